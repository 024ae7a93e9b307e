"""Realistic seed data: Dutch customers and invoices at MijnKlantportaal, French clients and
invoices at Qonto. Mixed paid, open and overdue; a few Qonto drafts (no number yet) and canceled
invoices. Amounts are two-decimal ``Decimal`` values. PDFs are not written here: they are made on
first download, which keeps 100,000 invoices per provider to a few seconds.
"""

from __future__ import annotations

import random
import time
from datetime import date, datetime, timedelta
from decimal import Decimal

from integrations.sandbox import times
from integrations.sandbox.store import (
    Attachment,
    MkpCustomer,
    MkpInvoice,
    QontoClient,
    QontoInvoice,
    Store,
)

_NL_NAMES = (
    "Van Dijk", "De Vries", "Bakker", "Jansen", "Visser", "Smit", "Meijer", "De Boer", "Mulder",
    "De Groot", "Bos", "Vos", "Peters", "Hendriks", "Van Leeuwen", "Dekker", "Brouwer", "De Wit",
    "Dijkstra", "Smits", "Van den Berg", "Kok", "Verhoeven", "Willems", "Van der Meer",
)  # fmt: skip
_NL_TRADES = (
    "Installatietechniek", "Bouw", "Schilderwerken", "Transport", "Advies", "Hoveniers", "Bakkerij",
    "Administratiekantoor", "ICT", "Loodgietersbedrijf", "Elektrotechniek", "Fietsen", "Makelaardij",
    "Kozijnen", "Tandartspraktijk", "Catering",
)  # fmt: skip
_NL_FORMS = ("B.V.", "B.V.", "V.O.F.", "", "Holding B.V.")
_NL_STREETS = (
    "Kerkstraat", "Dorpsstraat", "Molenweg", "Stationsweg", "Julianastraat", "Beatrixlaan",
    "Industrieweg", "Schoolstraat", "Marktplein", "Havenkade",
)  # fmt: skip
_NL_CITIES = (
    "Amsterdam", "Rotterdam", "Utrecht", "Den Haag", "Eindhoven", "Groningen", "Tilburg", "Almere",
    "Breda", "Nijmegen", "Haarlem", "Arnhem", "Zwolle", "Leiden", "Maastricht",
)  # fmt: skip
_FR_NAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
    "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "Fournier", "Girard", "Bonnet", "Dupont",
    "Lambert", "Rousseau", "Faure", "Chevalier", "Gauthier", "Mercier",
)  # fmt: skip
_FR_FIRST = ("Camille", "Léa", "Hugo", "Chloé", "Louis", "Manon", "Jules", "Inès", "Gabriel", "Zoé")
_FR_TRADES = (
    "Boulangerie", "Menuiserie", "Transports", "Conseil", "Plomberie", "Architectes", "Pharmacie",
    "Garage", "Traiteur", "Imprimerie", "Électricité", "Cabinet", "Librairie", "Fromagerie",
)  # fmt: skip
_FR_FORMS = ("SARL", "SAS", "SAS", "EURL", "SA")
_FR_STREETS = (
    "rue de la République", "avenue Jean Jaurès", "rue Victor Hugo", "boulevard Voltaire",
    "rue du Moulin", "place de la Mairie", "rue Pasteur", "allée des Tilleuls",
)  # fmt: skip
_FR_CITIES = (
    ("Paris", "75011"), ("Lyon", "69003"), ("Marseille", "13006"), ("Toulouse", "31000"),
    ("Nantes", "44000"), ("Lille", "59000"), ("Bordeaux", "33000"), ("Strasbourg", "67000"),
    ("Rennes", "35000"), ("Montpellier", "34000"), ("Nice", "06000"),
)  # fmt: skip
_QONTO_ITEMS = (
    "Prestation de services", "Maintenance mensuelle", "Fourniture de matériel", "Conseil",
    "Livraison", "Formation", "Abonnement logiciel",
)  # fmt: skip
_DUE_DAYS = (14, 30, 30, 30, 60)
_SECONDS_PER_DAY = 86_400


def seed_store(
    store: Store, *, customers: int | None = None, invoices: int = 300, seed: int | None = None
) -> dict:
    """Add ``customers`` customers/clients and ``invoices`` invoices to EACH provider.

    ``customers`` defaults to one per 20 invoices (5 to 2,000). ``seed`` makes the data repeatable.
    Returns the counts and the seconds it took."""
    if invoices < 0 or (customers is not None and customers < 0):
        raise ValueError("counts must not be negative")
    if customers is None:
        customers = min(max(5, invoices // 20), 2_000)
    if invoices and not customers:
        raise ValueError("invoices need at least one customer")
    rng = random.Random(seed) if seed is not None else store.rng
    started = time.perf_counter()
    now = times.utcnow().replace(microsecond=0)
    with store.lock:
        mkp_customers = [_mkp_customer(store, rng, now) for _ in range(customers)]
        qonto_clients = [_qonto_client(store, rng, now) for _ in range(customers)]
        _seed_mkp(store, rng, now, mkp_customers, invoices)
        _seed_qonto(store, rng, now, qonto_clients, invoices)
    return {"customers": customers, "invoices": invoices, "seconds": round(time.perf_counter() - started, 3)}


def _slug(name: str) -> str:
    return "".join(c for c in name.lower() if c.isascii() and c.isalnum())


def _amount(rng: random.Random) -> Decimal:
    cents = min(max(int(rng.lognormvariate(10.5, 1.1)), 500), 2_500_000)
    return Decimal(cents).scaleb(-2)


def _creation_times(rng: random.Random, now: datetime, count: int) -> list[datetime]:
    """``count`` moments of the last 400 days, oldest first (creation order = list order)."""
    offsets = sorted((rng.randrange(400 * _SECONDS_PER_DAY) for _ in range(count)), reverse=True)
    return [now - timedelta(seconds=offset) for offset in offsets]


def _mkp_customer(store: Store, rng: random.Random, now: datetime) -> MkpCustomer:
    family = rng.choice(_NL_NAMES)
    name = " ".join(p for p in (family, rng.choice(_NL_TRADES), rng.choice(_NL_FORMS)) if p)
    return store.add_mkp_customer(
        MkpCustomer(
            id=store.mkp_id("cst_", rng),
            company_name=name,
            address=f"{rng.choice(_NL_STREETS)} {rng.randint(1, 250)}",
            zip_code=f"{rng.randint(1000, 9999)}{rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}{rng.choice('ABEGHKLMNPRSTZ')}",
            city=rng.choice(_NL_CITIES),
            country_code="NL",
            primary_email=f"administratie@{_slug(family)}{rng.randint(1, 999)}.example",
            phone=f"+316{rng.randint(10_000_000, 99_999_999)}" if rng.random() < 0.8 else None,
            created_at=now - timedelta(seconds=rng.randrange(800 * _SECONDS_PER_DAY, 900 * _SECONDS_PER_DAY)),
        )
    )


def _qonto_client(store: Store, rng: random.Random, now: datetime) -> QontoClient:
    family = rng.choice(_FR_NAMES)
    city, zip_code = rng.choice(_FR_CITIES)
    created = now - timedelta(seconds=rng.randrange(800 * _SECONDS_PER_DAY, 900 * _SECONDS_PER_DAY))
    siren = f"{rng.randint(100_000_000, 999_999_999)}"
    individual = rng.random() < 0.1
    first = rng.choice(_FR_FIRST) if individual else None
    name = f"{first} {family}" if individual else f"{rng.choice(_FR_TRADES)} {family} {rng.choice(_FR_FORMS)}"
    return store.add_qonto_client(
        QontoClient(
            id=store.uuid(rng),
            name=name,
            kind="individual" if individual else "company",
            email=f"compta@{_slug(family)}{rng.randint(1, 999)}.example",
            vat_number=None if individual else f"FR{rng.randint(10, 99)}{siren}",
            tax_identification_number=None if individual else siren,
            address=f"{rng.randint(1, 120)} {rng.choice(_FR_STREETS)}",
            city=city,
            zip_code=zip_code,
            country_code="FR",
            locale="fr",
            created_at=created,
            updated_at=created,
            first_name=first,
            last_name=family if individual else None,
        )
    )


def _next_number(store: Store, provider: str, year: int) -> int:
    store.data.number_seq[(provider, year)] += 1
    return store.data.number_seq[(provider, year)]


def _issue_and_due(rng: random.Random, created: datetime, *, due_optional: bool) -> tuple[date, date | None]:
    issued = created.astimezone(times.AMSTERDAM).date() - timedelta(days=rng.choice((0, 0, 0, 1, 2, 3)))
    if due_optional and rng.random() < 0.1:
        return issued, None
    return issued, issued + timedelta(days=rng.choice(_DUE_DAYS))


def _paid_moment(rng: random.Random, created: datetime, now: datetime, share: float) -> datetime | None:
    if rng.random() >= share:
        return None
    paid = created + timedelta(seconds=rng.randrange(_SECONDS_PER_DAY // 2, 50 * _SECONDS_PER_DAY))
    return paid if paid <= now else None


def _seed_mkp(store: Store, rng: random.Random, now: datetime, customers: list, count: int) -> None:
    for created in _creation_times(rng, now, count):
        issued, due = _issue_and_due(rng, created, due_optional=True)
        paid = _paid_moment(rng, created, now, 0.6)
        store.add_mkp_invoice(
            MkpInvoice(
                id=store.mkp_id("inv_", rng),
                customer_id=rng.choice(customers).id,
                invoice_number=f"{issued.year}-{_next_number(store, 'mkp', issued.year):05d}",
                issued_at=issued,
                due_at=due,
                amount=_amount(rng),
                paid_at=paid,
                created_at=created,
                updated_at=paid or created,
                payment_token=store.mkp_id("", rng),
            )
        )


def _seed_qonto(store: Store, rng: random.Random, now: datetime, clients: list, count: int) -> None:
    for created in _creation_times(rng, now, count):
        issued, due = _issue_and_due(rng, created, due_optional=False)
        total = _amount(rng)
        roll = rng.random()
        status = "draft" if roll < 0.04 else "canceled" if roll < 0.07 else "unpaid"
        paid = _paid_moment(rng, created, now, 0.6) if status == "unpaid" else None
        if paid is not None:
            status = "paid"
        invoice = QontoInvoice(
            id=store.uuid(rng),
            number=None
            if status == "draft"
            else f"F-{issued.year}-{_next_number(store, 'qonto', issued.year):05d}",
            status=status,
            client_id=rng.choice(clients).id,
            issue_date=issued,
            due_date=due,
            total=total,
            vat=total - (total / Decimal("1.2")).quantize(Decimal("0.01")),
            created_at=created,
            updated_at=paid or created,
            finalized_at=None if status == "draft" else created,
            paid_at=paid,
            item_title=rng.choice(_QONTO_ITEMS),
        )
        attachment = None
        if status != "draft":
            attachment = Attachment(
                id=store.uuid(rng),
                file_name=f"{invoice.number}.pdf",
                created_at=created,
                invoice_id=invoice.id,
            )
        store.add_qonto_invoice(invoice, attachment)
