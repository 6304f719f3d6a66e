LIMITS = {"rep": 0.10, "manager": 0.25, "vp": 0.40}


def approve(quote, approver):
    """Decide whether `approver` may approve `quote`. See PROMPT.md."""
    amount, discount = quote["amount"], quote["discount"]
    if not 0 <= discount <= 1 or amount <= 0:
        return {"approved": False, "reason": "invalid", "net": 0.0}
    net = round(amount * (1 - discount), 2)
    role = approver["role"]

    def no(reason):
        return {"approved": False, "reason": reason, "net": net}

    if discount > LIMITS.get(role, 0.0):
        return no("discount too high")
    if net >= 100_000 and role != "vp":
        return no("needs vp")
    if quote["customer"] == "new" and role != "vp" and discount > 0.20:
        return no("new customer limit")
    return {"approved": True, "reason": "ok", "net": net}
