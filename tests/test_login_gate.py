"""The login gate the gateway asks about every MLflow request on a team stack: real users.json
files, real clocks held still. A wrong password counts against its address; five in a window
and the address is refused unchecked, except for a login accepted before; an unknown name costs
the same comparison as a known one."""

from __future__ import annotations

import base64
import hmac

import pytest

from mnist_ae.stack import registrar_app
from mnist_ae.stack.layout import Layout, User
from mnist_ae.stack.registrar_app import FAILURES_ALLOWED, LoginGate


def basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


@pytest.fixture
def gate(tmp_path) -> tuple[LoginGate, Layout, User]:
    layout = Layout(tmp_path / ".stack")
    layout.create()
    walt = User.new("walt", "writer")
    layout.save_users({"walt": walt})
    return LoginGate(layout), layout, walt


def test_a_member_passes_and_a_wrong_or_missing_login_does_not(gate):
    check, _, walt = gate
    assert check.check("10.0.0.9", basic("walt", walt.mlflow_password)) == (200, walt)
    assert check.check("10.0.0.9", basic("walt", "wrong")) == (401, None)
    assert check.check("10.0.0.9", basic("admin", "anything")) == (401, None)  # not a member
    assert check.check("10.0.0.9", None) == (401, None)


def test_an_address_that_keeps_failing_is_refused_unchecked_but_a_known_login_goes_on(gate):
    check, _, walt = gate
    good = basic("walt", walt.mlflow_password)
    assert check.check("10.0.0.9", good)[0] == 200  # accepted once: known from now on
    for n in range(FAILURES_ALLOWED):
        assert check.check("10.0.0.9", basic("walt", f"guess-{n}"))[0] == 401
    assert check.check("10.0.0.9", basic("walt", walt.mlflow_password + "x"))[0] == 429
    assert check.check("10.0.0.9", basic("walt", "guess-right-this-time?"))[0] == 429
    assert check.check("10.0.0.9", good)[0] == 200  # the honest member behind that address
    assert check.check("10.0.0.10", basic("walt", "wrong"))[0] == 401  # per address


def test_failures_age_out_of_the_window(gate, monkeypatch):
    check, _, walt = gate
    now = [1000.0]
    monkeypatch.setattr(registrar_app.time, "monotonic", lambda: now[0])
    for n in range(FAILURES_ALLOWED):
        check.check("10.0.0.9", basic("walt", f"guess-{n}"))
    assert check.check("10.0.0.9", basic("walt", walt.mlflow_password))[0] == 429
    now[0] += registrar_app.FAILURE_WINDOW_SECONDS + 1
    assert check.check("10.0.0.9", basic("walt", walt.mlflow_password))[0] == 200


def test_a_changed_users_file_forgets_every_accepted_login(gate):
    check, layout, walt = gate
    good = basic("walt", walt.mlflow_password)
    assert check.check("10.0.0.9", good)[0] == 200
    for n in range(FAILURES_ALLOWED):
        check.check("10.0.0.9", basic("walt", f"guess-{n}"))
    layout.save_users({})  # `stack user remove walt`
    assert check.check("10.0.0.9", good)[0] == 429  # no longer known: refused unchecked
    assert check.check("10.0.0.10", good)[0] == 401  # and elsewhere: no such member


def test_a_known_and_an_unknown_name_cost_the_same_comparison(gate, monkeypatch):
    check, _, walt = gate
    compared, compare = [], hmac.compare_digest

    def recording(given: bytes, expected: bytes) -> bool:
        compared.append((len(given), len(expected)))
        return compare(given, expected)

    monkeypatch.setattr(registrar_app.hmac, "compare_digest", recording)
    check.check("10.0.0.9", basic("walt", "x" * 32))
    check.check("10.0.0.10", basic("nobody-here", "x" * 32))
    assert compared == [(32, len(walt.mlflow_password))] * 2  # one comparison, same lengths
