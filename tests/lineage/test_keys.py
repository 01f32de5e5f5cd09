import pytest

from lineage.errors import PepperError
from lineage.keys import IdentifierKind, SubjectKeyer, normalize_identifier

PEPPER = bytes(range(32))


@pytest.mark.parametrize("kind, a, b", [
    (IdentifierKind.EMAIL, "Ada.Lovelace@Example.com", " ada.lovelace@example.com "),
    (IdentifierKind.PHONE, "+1 (202) 555-0142", "+12025550142"),
    (IdentifierKind.PHONE, "(202) 555-0142", "+1-202-555-0142"),
    (IdentifierKind.PHONE, "+44 20 7946 0958", "+442079460958"),
    (IdentifierKind.ACCOUNT, "acc 1234 5678", "ACC12345678"),
    (IdentifierKind.NAME, "Ada   LOVELACE", "ada lovelace"),
])
def test_equivalent_spellings_share_a_key(kind, a, b):
    keyer = SubjectKeyer(PEPPER)
    assert keyer.key(kind, a) == keyer.key(kind, b)


def test_key_depends_on_pepper_kind_and_value():
    one, two = SubjectKeyer(PEPPER), SubjectKeyer(bytes(32))
    assert one.key("email", "a@example.com") != two.key("email", "a@example.com")
    assert one.key("email", "a@example.com") != one.key("email", "b@example.com")
    assert one.key("name", "12345") != one.key("account", "12345")
    assert len(one.key("email", "a@example.com")) == 64


@pytest.mark.parametrize("kind, value, message", [
    (IdentifierKind.EMAIL, "not-an-email", "email"),
    (IdentifierKind.EMAIL, "@example.com", "email"),
    (IdentifierKind.PHONE, "12", "5 digits"),
    (IdentifierKind.NAME, "   ", "empty"),
])
def test_bad_identifiers_are_refused(kind, value, message):
    with pytest.raises(ValueError, match=message):
        normalize_identifier(kind, value)


def test_short_pepper_is_refused_and_never_printed():
    with pytest.raises(PepperError, match="at least 32"):
        SubjectKeyer(b"short")
    assert "hidden" in repr(SubjectKeyer(PEPPER))
