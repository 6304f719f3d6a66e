def approve(quote, approver):
    """Decide whether `approver` may approve `quote`. See PROMPT.md."""
    net = round(quote["amount"] * (1 - quote["discount"]), 2)
    return {"approved": True, "reason": "ok", "net": net}
