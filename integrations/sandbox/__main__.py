"""``python -m integrations.sandbox``: run the local sandbox of both provider APIs until Ctrl-C or
SIGTERM. ``--help`` lists the options."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading

from integrations.sandbox.config import SandboxConfig
from integrations.sandbox.faults import FaultInjector, parse_fault_spec
from integrations.sandbox.server import SandboxServer


def parse_latency(text: str) -> int:
    """Milliseconds from "80ms", "0.2s" or a plain number of milliseconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a latency such as 80ms or 0.2s")
    value = float(match.group(1)) * (1000 if match.group(2) == "s" else 1)
    return round(value)


WEBHOOK_FAULTS = {
    "duplicate": "webhook_duplicate",
    "out-of-order": "webhook_out_of_order",
    "bad-signature": "webhook_bad_signature",
}


def parse_webhook_faults(text: str) -> dict[str, bool]:
    """``"duplicate,bad-signature"`` -> the config switches (ValueError naming an unknown one)."""
    switches = {}
    for name in filter(None, (part.strip() for part in text.split(","))):
        if name not in WEBHOOK_FAULTS:
            raise ValueError(f"unknown webhook fault {name!r} (known: {', '.join(WEBHOOK_FAULTS)})")
        switches[WEBHOOK_FAULTS[name]] = True
    return switches


def build_parser() -> argparse.ArgumentParser:
    defaults = SandboxConfig()
    parser = argparse.ArgumentParser(
        prog="python -m integrations.sandbox",
        description="Local SANDBOX of the MijnKlantportaal and Qonto APIs (in memory, loopback only).",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="only 127.0.0.1 (or localhost) is accepted")
    add("--port", type=int, default=8765, help="port to listen on (default 8765; 0 = any free port)")
    add(
        "--seed-invoices",
        type=int,
        default=300,
        help="invoices to create per provider at start (default 300)",
    )
    add("--seed-customers", type=int, default=None, help="customers per provider (default: invoices / 20)")
    add("--data-seed", type=int, default=None, help="make the seeded data repeatable")
    add(
        "--state-file",
        default=None,
        help="keep the data in this file between runs: loaded at start when it exists (instead of"
        " seeding), written on exit",
    )
    add("--mkp-key", default=defaults.mkp_key, help="MKP API key (Authorization: Bearer KEY)")
    add("--qonto-login", default=defaults.qonto_login, help="Qonto login (Authorization: LOGIN:SECRET)")
    add("--qonto-secret", default=defaults.qonto_secret, help="Qonto secret key")
    add("--qonto-token", default=defaults.qonto_token, help="Qonto OAuth token (Authorization: Bearer TOKEN)")
    add(
        "--qonto-staging-token",
        default=None,
        help="require this X-Qonto-Staging-Token (default: not required)",
    )
    add("--no-rate-limit", action="store_true", help="switch both providers' rate limits off")
    add(
        "--latency",
        type=parse_latency,
        default=0,
        help="hold every API answer this long, as a provider across the internet does (e.g. 80ms, 0.2s)",
    )
    add(
        "--mkp-license-limit",
        type=int,
        default=None,
        help="MKP invoices per month before 426 (default: none)",
    )
    add("--mkp-unique-numbers", action="store_true", help="MKP refuses an invoice number already used (422)")
    add("--faults", default="", help="fault probabilities, e.g. 500=0.05,timeout=0.02,reset=0.01")
    add(
        "--fault-after-share", type=float, default=0.5, help="share of write faults striking after the change"
    )
    add("--fault-seed", type=int, default=None, help="seed of the fault generator (repeatable runs)")
    add("--fault-providers", default="mkp,qonto", help="providers the faults apply to (default both)")
    add("--fault-methods", default="", help="HTTP methods the faults apply to, e.g. POST,PATCH (default all)")
    add("--timeout-seconds", type=float, default=35.0, help="how long the timeout fault holds a request")
    add("--slow-seconds", type=float, default=2.0, help="delay of the slow fault")
    add(
        "--webhook-faults",
        default="",
        help="webhook faults, comma-separated: duplicate, out-of-order, bad-signature (default none)",
    )
    add(
        "--webhook-delay",
        type=parse_latency,
        default=0,
        help="hold every webhook delivery this long (e.g. 500ms, 3s)",
    )
    add(
        "--webhook-attempts",
        type=int,
        default=defaults.webhook_max_attempts,
        help=f"attempts per webhook delivery before it is abandoned (default {defaults.webhook_max_attempts})",
    )
    add(
        "--webhook-retry",
        type=parse_latency,
        default=defaults.webhook_retry_ms,
        help="wait before the first retry of a failed delivery, doubled each time (default 2s)",
    )
    add("--quiet", action="store_true", help="no access log")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    kept = bool(args.state_file) and os.path.exists(args.state_file)
    try:
        faults = FaultInjector(
            parse_fault_spec(args.faults),
            after_share=args.fault_after_share,
            seed=args.fault_seed,
            slow_seconds=args.slow_seconds,
            timeout_seconds=args.timeout_seconds,
            providers=tuple(p.strip() for p in args.fault_providers.split(",") if p.strip()),
            methods=tuple(m.strip().upper() for m in args.fault_methods.split(",") if m.strip()) or None,
        )
        config = SandboxConfig(
            mkp_key=args.mkp_key,
            qonto_login=args.qonto_login,
            qonto_secret=args.qonto_secret,
            qonto_token=args.qonto_token,
            qonto_staging_token=args.qonto_staging_token or None,
            rate_limit=not args.no_rate_limit,
            latency_ms=args.latency,
            mkp_license_limit=args.mkp_license_limit,
            mkp_unique_numbers=args.mkp_unique_numbers,
            webhook_delay_ms=args.webhook_delay,
            webhook_max_attempts=max(1, args.webhook_attempts),
            webhook_retry_ms=args.webhook_retry,
            **parse_webhook_faults(args.webhook_faults),
        )
        sandbox = SandboxServer(
            host=args.host,
            port=args.port,
            config=config,
            faults=faults,
            seed_invoices=0 if kept else args.seed_invoices,
            seed_customers=args.seed_customers,
            data_seed=args.data_seed,
            quiet=args.quiet,
        )
        loaded = sandbox.state.load(args.state_file) if kept else None
        sandbox.start()
    except ValueError as exc:
        parser.error(str(exc))
    except OSError as exc:
        print(f"Cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(banner(sandbox, state_file=args.state_file, loaded=loaded), flush=True)
    while not stop.wait(0.5):
        pass
    sandbox.stop()
    if args.state_file:
        try:
            sandbox.state.save(args.state_file)
        except OSError as exc:
            print(
                f"Sandbox stopped, but its data could not be kept in {args.state_file}: {exc}",
                file=sys.stderr,
            )
            return 1
        print(f"Sandbox stopped; its data is kept in {args.state_file}.", flush=True)
    else:
        print("Sandbox stopped.", flush=True)
    return 0


def banner(sandbox: SandboxServer, *, state_file: str | None = None, loaded: dict | None = None) -> str:
    config = sandbox.config
    staging = (
        f"X-Qonto-Staging-Token: {config.qonto_staging_token}"
        if config.qonto_staging_token
        else "not required"
    )
    fault_settings = sandbox.faults.to_json()
    faults = ", ".join(f"{k}={v}" for k, v in fault_settings["probabilities"].items()) or "none"
    webhook_faults = ", ".join(f for f, name in WEBHOOK_FAULTS.items() if getattr(config, name)) or "none"
    seeded = sandbox.seeded or {"invoices": 0, "customers": 0, "seconds": 0}
    if loaded is not None:
        data = f" Data              loaded from {state_file}: {loaded['mkp']} MijnKlantportaal and {loaded['qonto']} Qonto invoices"
    else:
        data = (
            f" Seeded            {seeded['invoices']} invoices and {seeded['customers']} customers per provider"
            f" in {seeded['seconds']} s"
        )
    kept = f"Data kept in {state_file} between runs." if state_file else "In-memory data, lost on exit."
    line = "=" * 78
    return "\n".join(
        [
            line,
            " LOCAL SANDBOX of the MijnKlantportaal and Qonto APIs - NOT the real services.",
            f" {kept} Listening on 127.0.0.1 only.",
            line,
            f" MijnKlantportaal  {sandbox.mkp_base_url}",
            f"     Authorization: Bearer {config.mkp_key}",
            f" Qonto             {sandbox.qonto_base_url}   (paths /v2/...)",
            f"     Authorization: {config.qonto_login}:{config.qonto_secret}",
            f"                or: Bearer {config.qonto_token}",
            f"     Staging token: {staging}",
            f"     OAuth:        {sandbox.qonto_oauth_url}/auth and /token"
            f"  (client {config.qonto_client_id}:{config.qonto_client_secret}, approves at once)",
            f" Admin             {sandbox.admin_url}  (faults, config, reset, seed, stats, state)",
            f" Webhooks          to the URLs registered at each provider    faults: {webhook_faults}"
            f"    delay: {config.webhook_delay_ms} ms    attempts: {config.webhook_max_attempts}",
            f" Rate limits       {'on' if config.rate_limit else 'off'}"
            f"    latency: {config.latency_ms} ms"
            f"    MKP licence limit: {config.mkp_license_limit or 'none'}"
            f"    MKP unique numbers: {'yes' if config.mkp_unique_numbers else 'no'}",
            f" Faults            {faults}  (after share {fault_settings['after_share']},"
            f" seed {fault_settings['seed']}, timeout {fault_settings['timeout_seconds']} s)",
            data,
            line,
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
