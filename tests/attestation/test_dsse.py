"""DSSE: the spec's PAE example, strict parsing, thresholds, and agreement with securesystemslib."""

from __future__ import annotations

import json

import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from attestation import (PAYLOAD_TYPE_IN_TOTO, Envelope, InputError, KeyPurpose, SignatureError, pae,
                         sign_envelope, sign_statement, verify_envelope)
from attestation.encoding import b64encode, canonical_json
from tests.attestation.attestation_fixtures import (ATTESTATION_KEY, KEYS_FROM, KEYS_UNTIL, LOG_KEY,
                                                    OTHER_KEY, make_statement, registry)


def test_pae_matches_the_dsse_spec_example():
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_pae_counts_bytes_not_characters():
    assert pae("t\u00e9", b"\xff") == b"DSSEv1 3 t\xc3\xa9 1 \xff"


def test_round_trip_and_verify():
    envelope = sign_envelope(b'{"a":1}', PAYLOAD_TYPE_IN_TOTO, [ATTESTATION_KEY])
    parsed = Envelope.from_json(envelope.to_json())
    assert parsed == envelope
    assert verify_envelope(parsed, registry()) == (ATTESTATION_KEY.keyid,)


def _ssl_key(key) -> SSlibKey:
    return SSlibKey.from_crypto(key.public_key, keyid=key.keyid)


def test_securesystemslib_verifies_our_envelope_and_refuses_a_tampered_one():
    data = sign_statement(make_statement(), [ATTESTATION_KEY]).to_json()
    theirs = SslibEnvelope.from_dict(json.loads(data))
    accepted = theirs.verify([_ssl_key(ATTESTATION_KEY)], 1)
    assert list(accepted) == [ATTESTATION_KEY.keyid]
    assert theirs.payload_type == PAYLOAD_TYPE_IN_TOTO and json.loads(theirs.payload)["_type"].startswith("https://in-toto")

    tampered = json.loads(data)
    tampered["payload"] = b64encode(theirs.payload.replace(b'"erased"', b'"Erased"'))
    with pytest.raises(VerificationError):
        SslibEnvelope.from_dict(tampered).verify([_ssl_key(ATTESTATION_KEY)], 1)
    with pytest.raises(VerificationError):  # and under a key that did not sign
        SslibEnvelope.from_dict(json.loads(data)).verify([SSlibKey.from_crypto(OTHER_KEY.public_key,
                                                                                keyid=ATTESTATION_KEY.keyid)], 1)


def test_we_verify_an_envelope_signed_by_securesystemslib():
    signer = CryptoSigner(ATTESTATION_KEY.private_key, _ssl_key(ATTESTATION_KEY))
    theirs = SslibEnvelope(b'{"hello":"world"}', PAYLOAD_TYPE_IN_TOTO, {})
    theirs.sign(signer)
    ours = Envelope.from_json(canonical_json(theirs.to_dict()))
    assert verify_envelope(ours, registry()) == (ATTESTATION_KEY.keyid,)


def _envelope_json() -> dict:
    return json.loads(sign_envelope(b"payload", "text/plain", [ATTESTATION_KEY]).to_json())


@pytest.mark.parametrize("mutate, message", [
    (lambda e: e.pop("payloadType"), "missing fields"),
    (lambda e: e.update(extra=1), "unknown fields"),
    (lambda e: e.update(signatures=[]), "non-empty"),
    (lambda e: e["signatures"][0].update(cert="x"), "unknown fields"),
    (lambda e: e["signatures"][0].update(keyid="ABC"), "keyid"),
    (lambda e: e["signatures"].append(dict(e["signatures"][0])), "twice"),
    (lambda e: e.update(payload=e["payload"].rstrip("=")), "base64"),
    (lambda e: e.update(payload="cGF5bG9hZB=="), "canonical base64"),  # unused bits set
    (lambda e: e.update(payload="cGF5bG9hZA-_"), "base64"),
    (lambda e: e["signatures"][0].update(sig=b64encode(b"\x00" * 63)), "64"),
    (lambda e: e.update(payloadType=""), "payloadType"),
    (lambda e: e.update(payloadType=7), "payloadType"),
])
def test_strict_parsing_refuses_malformed_envelopes(mutate, message):
    envelope = _envelope_json()
    mutate(envelope)
    with pytest.raises(InputError, match=message):
        Envelope.from_json(canonical_json(envelope))


def test_non_canonical_json_is_refused():
    pretty = json.dumps(_envelope_json(), indent=2).encode()
    with pytest.raises(InputError, match="canonical JSON"):
        Envelope.from_json(pretty)


def test_untrusted_unknown_and_wrong_purpose_keys_are_refused():
    for key in (OTHER_KEY, LOG_KEY):  # unknown; registered, but for checkpoints only
        envelope = sign_envelope(b"x", "text/plain", [key])
        with pytest.raises(SignatureError):
            verify_envelope(envelope, registry())
    with pytest.raises(SignatureError, match="for 'log' signatures"):
        verify_envelope(sign_envelope(b"x", "text/plain", [LOG_KEY]), registry())


def test_a_changed_payload_type_breaks_the_signature():
    envelope = sign_envelope(b"x", "text/plain", [ATTESTATION_KEY])
    retyped = Envelope(envelope.payload, "text/html", envelope.signatures)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_envelope(retyped, registry())


def test_threshold_counts_distinct_trusted_keys():
    keys = registry()
    keys.trust(OTHER_KEY.public_key, KeyPurpose.ATTESTATION, KEYS_FROM, KEYS_UNTIL)
    two = sign_envelope(b"x", "text/plain", [ATTESTATION_KEY, OTHER_KEY])
    assert set(verify_envelope(two, keys, threshold=2)) == {ATTESTATION_KEY.keyid, OTHER_KEY.keyid}
    with pytest.raises(SignatureError, match="2 required"):
        verify_envelope(sign_envelope(b"x", "text/plain", [ATTESTATION_KEY]), keys, threshold=2)
    with pytest.raises(SignatureError, match="threshold"):
        verify_envelope(two, keys, threshold=0)
    with pytest.raises(SignatureError):
        sign_envelope(b"x", "text/plain", [ATTESTATION_KEY, ATTESTATION_KEY])

