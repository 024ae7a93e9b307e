"""The providers' webhook signature checks, as pure functions."""

import pytest

from integrations import errors
from integrations.webhooks import (
    mkp_signature_matches,
    qonto_signature,
    verify_mkp_signature,
    verify_qonto_signature,
)

# Qonto's published test vector (provider notes, section 12).
VECTOR_BODY = b'{"test":"data"}'
VECTOR_SECRET = "test-secret"
VECTOR_TIME = 1704110400
VECTOR_HEADER = "t=1704110400,v1=56aff06dc227db80d6568a5070f912c601c31f20451745d257cbc0b5dfa93805"


def test_qonto_published_test_vector():
    assert (
        qonto_signature(secret=VECTOR_SECRET, timestamp=VECTOR_TIME, body=VECTOR_BODY)
        == (VECTOR_HEADER.split("v1=")[1])
    )
    key = verify_qonto_signature(
        header=VECTOR_HEADER, body=VECTOR_BODY, secrets={"sub": VECTOR_SECRET}, now=VECTOR_TIME + 10
    )
    assert key == "sub"


def test_qonto_the_matching_secret_among_several_is_named():
    secrets = {1: "other-secret", 2: VECTOR_SECRET, 3: ""}
    assert (
        verify_qonto_signature(header=VECTOR_HEADER, body=VECTOR_BODY, secrets=secrets, now=VECTOR_TIME) == 2
    )


@pytest.mark.parametrize(
    "body, header",
    [
        (b'{"test":"datA"}', VECTOR_HEADER),  # the body changed on the way
        (VECTOR_BODY, VECTOR_HEADER[:-1] + "4"),  # a forged signature
        (VECTOR_BODY, "t=1704110401," + VECTOR_HEADER.split(",")[1]),  # the timestamp changed
    ],
)
def test_qonto_forged_or_altered_deliveries_are_refused(body, header):
    with pytest.raises(errors.WebhookSignatureMismatch):
        verify_qonto_signature(header=header, body=body, secrets={1: VECTOR_SECRET}, now=VECTOR_TIME)


def test_qonto_a_signature_older_than_five_minutes_is_refused():
    verify_qonto_signature(
        header=VECTOR_HEADER, body=VECTOR_BODY, secrets={1: VECTOR_SECRET}, now=VECTOR_TIME + 300
    )
    with pytest.raises(errors.WebhookSignatureExpired):
        verify_qonto_signature(
            header=VECTOR_HEADER, body=VECTOR_BODY, secrets={1: VECTOR_SECRET}, now=VECTOR_TIME + 301
        )
    with pytest.raises(errors.WebhookSignatureExpired):  # from the future: a clock far off
        verify_qonto_signature(
            header=VECTOR_HEADER, body=VECTOR_BODY, secrets={1: VECTOR_SECRET}, now=VECTOR_TIME - 301
        )


@pytest.mark.parametrize("header", [None, "", "v1=abc", "t=1704110400", "t=soon,v1=abc", "garbage"])
def test_qonto_a_missing_or_unreadable_header_is_refused(header):
    with pytest.raises(errors.WebhookSignatureMissing):
        verify_qonto_signature(header=header, body=VECTOR_BODY, secrets={1: VECTOR_SECRET}, now=VECTOR_TIME)


def test_qonto_no_subscription_means_no_match():
    with pytest.raises(errors.WebhookSignatureMismatch):
        verify_qonto_signature(header=VECTOR_HEADER, body=VECTOR_BODY, secrets={}, now=VECTOR_TIME)


def test_mkp_header_carries_the_record_secret():
    secrets = {"wbh_paid": "OUJX2prdBbJxR77BZlGz", "wbh_created": "Zp8Qk1mN0vXa2Ls7TgHe"}
    assert verify_mkp_signature(header="Zp8Qk1mN0vXa2Ls7TgHe", body=b"{}", secrets=secrets) == "wbh_created"
    assert mkp_signature_matches(header="OUJX2prdBbJxR77BZlGz", body=b"", secret="OUJX2prdBbJxR77BZlGz")
    assert not mkp_signature_matches(header="OUJX2prdBbJxR77BZlG", body=b"", secret="OUJX2prdBbJxR77BZlGz")


@pytest.mark.parametrize(
    "header, error",
    [
        (None, errors.WebhookSignatureMissing),
        ("  ", errors.WebhookSignatureMissing),
        ("OUJX2prdBbJxR77BZlGy", errors.WebhookSignatureMismatch),
        ("ÖUJX2prdBbJxR77BZlGz", errors.WebhookSignatureMismatch),
    ],
)
def test_mkp_missing_or_wrong_header_is_refused(header, error):
    with pytest.raises(error):
        verify_mkp_signature(header=header, body=b"{}", secrets={1: "OUJX2prdBbJxR77BZlGz"})


@pytest.mark.parametrize(
    "header",
    [
        "t=²,v1=" + "0" * 64,  # a digit to str.isdigit, not to int()
        "t=" + "9" * 400 + ",v1=" + "0" * 64,  # a timestamp no clock reaches
        f"t={VECTOR_TIME},v1=é",  # not hex
        f"t={VECTOR_TIME},v1=abc",  # too short for a SHA-256
    ],
)
def test_qonto_an_unreadable_header_is_a_typed_refusal(header):
    with pytest.raises(errors.WebhookSignatureMissing):
        verify_qonto_signature(
            header=header, body=VECTOR_BODY, secrets={"sub": VECTOR_SECRET}, now=VECTOR_TIME
        )
