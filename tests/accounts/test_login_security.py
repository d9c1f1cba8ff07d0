"""Sign-in hardening: failed-login limits, safe `next` redirects, TOTP, sessions, password reset."""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode, urlsplit

import pytest
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal import auth as totp_auth
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN_URL = "/accounts/login/"
WRONG_PASSWORD = "not-the-password-42"
BAD_CREDENTIALS = "you specified are not correct"
TOO_MANY = "Too many failed login attempts"


def _login(client: Client, email: str, password: str = PASSWORD, *, next_url: str | None = None):
    url = LOGIN_URL if next_url is None else f"{LOGIN_URL}?{urlencode({'next': next_url})}"
    return client.post(url, {"login": email, "password": password})


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# --- (a) failed-login rate limit -------------------------------------------------------------


def test_five_wrong_passwords_lock_the_account_even_for_the_right_password(client, owner):
    for attempt in range(5):
        response = _login(client, owner.email, WRONG_PASSWORD)
        body = response.content.decode()
        assert response.status_code == 200, attempt
        assert BAD_CREDENTIALS in body, attempt
        assert TOO_MANY not in body, attempt

    locked = _login(client, owner.email, WRONG_PASSWORD)
    assert TOO_MANY in locked.content.decode()

    # allauth refuses inside the form (200 + message); the 429 comes from the per-IP limit below.
    right = _login(client, owner.email, PASSWORD)
    assert right.status_code == 200
    assert TOO_MANY in right.content.decode()
    assert not _signed_in(client)
    assert client.get(reverse("profile")).status_code == 302


def test_locking_one_account_does_not_lock_another(client, owner, member):
    for _ in range(6):
        _login(client, owner.email, WRONG_PASSWORD)
    assert TOO_MANY in _login(client, owner.email, PASSWORD).content.decode()

    other = Client()
    response = _login(other, member.email, PASSWORD)
    assert response.status_code == 302
    assert _signed_in(other)


def test_the_lock_is_by_address_whatever_its_case(client, owner):
    for _ in range(5):
        _login(client, owner.email.upper(), WRONG_PASSWORD)

    assert TOO_MANY in _login(client, owner.email, PASSWORD).content.decode()
    assert not _signed_in(client)


def test_hammering_the_login_form_is_answered_with_429(client, owner):
    statuses = [_login(client, owner.email, WRONG_PASSWORD).status_code for _ in range(40)]

    assert 429 in statuses, statuses
    first = statuses.index(429)
    assert first <= 30  # allauth's "login" limit, 30/m/ip
    # Everything after the first 429 stays refused, the right password included.
    assert set(statuses[first:]) == {429}
    assert _login(client, owner.email, PASSWORD).status_code == 429
    assert not _signed_in(client)


# --- (b) open redirect through ?next= --------------------------------------------------------

EVIL_NEXT = [
    "https://evil.example",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https:evil.example",
    "http:///evil.example",
    "javascript:alert(1)",
    " javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
]


def _assert_same_site(location: str) -> None:
    parts = urlsplit(location)
    assert "evil.example" not in location.lower(), location
    assert not location.strip().lower().startswith("javascript:"), location
    assert parts.scheme in {"", "http", "https"}, location
    assert parts.netloc in {"", "testserver"}, location
    assert location.startswith("/") or parts.netloc == "testserver", location
    assert not location.startswith(("//", "/\\")), location


@pytest.mark.parametrize("next_url", EVIL_NEXT)
def test_login_never_redirects_off_site(client, owner, next_url):
    response = _login(client, owner.email, next_url=next_url)

    assert response.status_code == 302
    assert _signed_in(client)
    _assert_same_site(response["Location"])
    # Walk the rest of the chain as a browser would.
    followed = client.get(response["Location"], follow=True)
    for hop, _status in followed.redirect_chain:
        _assert_same_site(hop)


@pytest.mark.parametrize("next_url", EVIL_NEXT)
def test_login_form_field_next_is_checked_too(client, owner, next_url):
    response = client.post(LOGIN_URL, {"login": owner.email, "password": PASSWORD, "next": next_url})

    assert response.status_code == 302
    _assert_same_site(response["Location"])


def test_login_follows_a_same_site_next(client, owner):
    """Control for the tests above: `next` is honoured when it is safe."""
    response = _login(client, owner.email, next_url="/accounts/profile/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/profile/"


# --- (c) TOTP ------------------------------------------------------------------------------


def _code(secret: str) -> str:
    counter = int(time.time()) // mfa_settings.TOTP_PERIOD
    return totp_auth.format_hotp_value(totp_auth.hotp_value(secret, counter))


def _wrong_code(secret: str) -> str:
    return "000000" if _code(secret) != "000000" else "111111"


def _wait_for_a_fresh_totp_window(seconds_needed: float = 10) -> None:
    """The reuse test must run inside one TOTP window, or the code would expire, not be reused."""
    left = mfa_settings.TOTP_PERIOD - time.time() % mfa_settings.TOTP_PERIOD
    if left < seconds_needed:
        time.sleep(left + 0.2)


def _activate_totp(client: Client, user) -> str:
    assert _login(client, user.email).status_code == 302
    # Turning on MFA asks for the password again, even right after signing in.
    asked = client.get("/accounts/2fa/totp/activate/")
    assert asked.status_code == 302
    assert asked["Location"].startswith(reverse("account_reauthenticate"))
    again = client.post(asked["Location"], {"password": PASSWORD})
    assert again.status_code == 302
    assert again["Location"] == "/accounts/2fa/totp/activate/"
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = client.session[totp_auth.SECRET_SESSION_KEY]
    assert secret in page.content.decode()  # shown for manual entry next to the QR code

    wrong = client.post("/accounts/2fa/totp/activate/", {"code": _wrong_code(secret)})
    assert wrong.status_code == 200
    assert not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()

    response = client.post("/accounts/2fa/totp/activate/", {"code": _code(secret)})
    assert response.status_code == 302
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    return secret


def _logout(client: Client) -> None:
    client.post(reverse("account_logout"))
    assert not _signed_in(client)


def test_totp_is_asked_after_password_and_a_code_works_once(client, owner):
    _wait_for_a_fresh_totp_window()
    secret = _activate_totp(client, owner)
    _logout(client)

    password_step = _login(client, owner.email)
    assert password_step.status_code == 302
    assert password_step["Location"] == reverse("mfa_authenticate")
    assert not _signed_in(client)
    assert client.get(reverse("profile")).status_code == 302

    code = _code(secret)
    ok = client.post(reverse("mfa_authenticate"), {"code": code})
    assert ok.status_code == 302
    assert _signed_in(client)
    assert client.get(reverse("profile")).status_code == 200
    _logout(client)

    # The same code, still inside its time window, is refused the second time.
    assert _login(client, owner.email)["Location"] == reverse("mfa_authenticate")
    replay = client.post(reverse("mfa_authenticate"), {"code": code})
    assert replay.status_code == 200
    assert "Incorrect code" in replay.content.decode()
    assert not _signed_in(client)
    assert totp_auth.validate_totp_code(secret, code), "window passed; the test did not test reuse"


def test_wrong_totp_code_does_not_sign_in(client, owner):
    _wait_for_a_fresh_totp_window()
    secret = _activate_totp(client, owner)
    _logout(client)
    _login(client, owner.email)

    response = client.post(reverse("mfa_authenticate"), {"code": _wrong_code(secret)})

    assert response.status_code == 200
    assert "Incorrect code" in response.content.decode()
    assert not _signed_in(client)


def test_totp_activation_refuses_a_wrong_password(client_as, owner):
    """Someone holding only the session cookie cannot turn on their own second factor."""
    stolen = client_as(owner)
    asked = stolen.get("/accounts/2fa/totp/activate/")
    assert asked["Location"].startswith(reverse("account_reauthenticate"))

    refused = stolen.post(asked["Location"], {"password": WRONG_PASSWORD})

    assert refused.status_code == 200
    assert stolen.get("/accounts/2fa/totp/activate/").status_code == 302
    assert not Authenticator.objects.filter(user=owner).exists()


# --- (d) active sessions ---------------------------------------------------------------------


def test_sessions_page_lists_every_signed_in_browser_and_can_end_the_others(owner):
    laptop = Client(HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux) LaptopBrowser/1.0")
    phone = Client(HTTP_USER_AGENT="Mozilla/5.0 (iPhone) PhoneBrowser/2.0")
    assert _login(laptop, owner.email).status_code == 302
    assert _login(phone, owner.email).status_code == 302

    page = laptop.get(reverse("usersessions_list"))
    body = page.content.decode()
    assert page.status_code == 200
    assert "LaptopBrowser/1.0" in body
    assert "PhoneBrowser/2.0" in body
    assert "127.0.0.1" in body
    assert "Current" in body

    ended = laptop.post(reverse("usersessions_list"))
    assert ended.status_code == 302
    assert phone.get(reverse("profile")).status_code == 302  # the phone is signed out
    assert laptop.get(reverse("profile")).status_code == 200
    remaining = laptop.get(reverse("usersessions_list")).content.decode()
    assert "PhoneBrowser/2.0" not in remaining


def test_sessions_page_needs_sign_in(client):
    response = client.get(reverse("usersessions_list"))

    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN_URL)


# --- (e) password reset ----------------------------------------------------------------------

RESET_LINK = re.compile(r"https?://[^\s\"'<>]+/accounts/password/reset/key/[^\s\"'<>]+/")


def test_password_reset_mails_a_link_that_sets_a_new_password(
    client, owner, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("account_reset_password"), {"email": owner.email})
    assert response.status_code == 302

    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [owner.email]
    match = RESET_LINK.search(mailoutbox[0].body)
    assert match, mailoutbox[0].body

    form = client.get(match.group(0), follow=True)
    assert form.status_code == 200
    new_password = "brand-new-Secret-2024"
    done = client.post(form.redirect_chain[-1][0], {"password1": new_password, "password2": new_password})
    assert done.status_code == 302

    owner.refresh_from_db()
    assert owner.check_password(new_password)
    assert _login(Client(), owner.email, new_password).status_code == 302
    # The link is single use.
    again = Client().get(match.group(0), follow=True)
    assert "The password reset link was invalid" in again.content.decode()


def test_password_reset_mail_names_the_site(client, owner, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("account_reset_password"), {"email": owner.email})

    body = mailoutbox[0].body
    assert "Hello from !" not in body, f"the mail does not say who it is from:\n{body}"
    assert "Thank you for using !" not in body, body


def test_password_reset_for_an_unknown_address_sends_no_reset_link(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})

    assert all(not RESET_LINK.search(message.body) for message in mailoutbox)
