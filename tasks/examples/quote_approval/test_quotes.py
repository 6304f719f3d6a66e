from quotes import approve

REP = {"role": "rep", "id": 1}
MANAGER = {"role": "manager", "id": 2}
VP = {"role": "vp", "id": 3}


def quote(amount=1000.0, discount=0.0, customer="existing"):
    return {"amount": amount, "discount": discount, "customer": customer}


def test_plain_quote_ok():
    assert approve(quote(), REP) == {"approved": True, "reason": "ok", "net": 1000.0}


def test_net_rounded_to_cents():
    assert approve(quote(amount=99.99, discount=0.1), REP)["net"] == 89.99


def test_negative_discount_invalid():
    assert approve(quote(discount=-0.1), VP)["reason"] == "invalid"


def test_zero_amount_invalid():
    r = approve(quote(amount=0), VP)
    assert (r["approved"], r["reason"]) == (False, "invalid")


def test_rep_limit():
    assert approve(quote(discount=0.10), REP)["approved"]
    assert approve(quote(discount=0.11), REP)["reason"] == "discount too high"


def test_manager_limit():
    assert approve(quote(discount=0.25), MANAGER)["approved"]
    assert approve(quote(discount=0.26), MANAGER)["reason"] == "discount too high"


def test_vp_limit():
    assert approve(quote(discount=0.40), VP)["approved"]
    assert approve(quote(discount=0.41), VP)["reason"] == "discount too high"


def test_large_quote_needs_vp():
    assert approve(quote(amount=200_000), MANAGER)["reason"] == "needs vp"


def test_large_quote_vp_ok():
    assert approve(quote(amount=200_000, discount=0.3), VP)["approved"]


def test_just_below_vp_threshold():
    assert approve(quote(amount=100_000, discount=0.01), MANAGER)["approved"]


def test_new_customer_limit():
    assert approve(quote(discount=0.22, customer="new"), MANAGER)["reason"] == "new customer limit"


def test_rule_order():
    # Too high a discount is reported before the vp rule.
    assert approve(quote(amount=500_000, discount=0.5), MANAGER)["reason"] == "discount too high"
