"""Build the synthetic support-ticket data set and the stand-in models' rules (deterministic, seed 20261201).

    python datasets/tickets/build.py

Writes ``datasets/tickets/heldout.jsonl`` (240 tickets, 8 imbalanced categories, 0-3 tags each) and
``suites/tickets/standin_models.yaml`` (keyword rules for the loopback server: a "frontier" and a
"tuned" router and tagger). Every ticket is generated from the templates below: CC0.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261201
N = 240
# category: (share, ticket texts); the rare classes at the end are what a tuned model tends to drop
CATEGORIES = {
    "billing": (0.38, ["I was charged twice for my plan this month.", "The invoice total does not match my plan.",
                       "Why was my card charged after the trial ended?"]),
    "login": (0.2, ["I can't log in, the password reset link never arrives.", "My password stopped working today.",
                    "Two-factor code is rejected when I try to log in."]),
    "bug": (0.14, ["The app crashes when I open the settings page.", "I get an error 500 when saving a report.",
                   "The chart shows an error instead of my data."]),
    "outage": (0.09, ["The dashboard is down for our whole team.", "Your API is unreachable since 9am.",
                      "Everything is down, we cannot work."]),
    "feature_request": (0.08, ["It would be great to have dark mode.", "Please add a way to share reports.",
                               "It would be great if filters could be saved."]),
    "cancellation": (0.05, ["Please cancel my subscription at the end of the month.",
                            "I want to cancel my account and delete it."]),
    "data_export": (0.04, ["How do I export all my projects to CSV?", "I need an export of our invoices as CSV."]),
    "security": (0.02, ["I got a phishing email pretending to be you.",
                        "There was a suspicious login to my account from abroad."]),
}
VAGUE = ["Something is wrong with my account, please help.", "Hi, I have a problem, can someone call me?"]
TAGS = {"refund": "I would like a refund.", "mobile": "This happens on my iPhone.",
        "urgent": "This is urgent!", "enterprise": "We are on the Enterprise plan."}
# searched in the whole prompt: no pattern may match the label names the system prompt lists
TAG_PATTERNS = {"refund": "a refund", "mobile": "iphone|android", "urgent": "is urgent", "enterprise": "enterprise plan"}
# the router rules: first match answers (security before login: "suspicious login")
FRONTIER_ROUTER = [("phishing|suspicious login", "security"), ("an export|to csv|as csv", "data_export"),
                   ("cancel my", "cancellation"), ("would be great|please add", "feature_request"),
                   ("is down|unreachable", "outage"), ("crash|error", "bug"),
                   ("log in|password|two-factor", "login"), ("charged|invoice|card", "billing")]
TUNED_ROUTER = [("cancel my", "cancellation"), ("would be great|please add", "feature_request"),
                ("is down|unreachable", "outage"), ("crash|error", "bug"), ("log in|password|two-factor", "login"),
                ("charged|invoice|card|as csv", "billing")]  # never answers security or data_export


def tickets(rng: random.Random) -> list[dict[str, object]]:
    names, shares = list(CATEGORIES), [c[0] for c in CATEGORIES.values()]
    rows = []
    for i in range(N):
        category = rng.choices(names, shares)[0] if i >= len(names) else names[i]  # every class at least once
        text = rng.choice(CATEGORIES[category][1]) if rng.random() > 0.07 else rng.choice(VAGUE)
        tags = sorted(rng.sample(list(TAGS), rng.choice([0, 0, 1, 1, 1, 2, 2, 3])))
        body = " ".join([text, *(TAGS[t] for t in tags)])
        rows.append({"id": f"t{i:03d}", "body": body, "category": category, "tags": tags,
                     "tier": "enterprise" if "enterprise" in tags else "self-serve"})
    return rows


def tag_rules(known: list[str], style: str) -> list[dict[str, str]]:
    """One rule per subset of the known tags, largest first (lookaheads), and the empty answer last."""
    rules = []
    for size in range(len(known), 0, -1):
        for subset in itertools.combinations(known, size):
            pattern = "".join(f"(?=.*(?:{TAG_PATTERNS[t]}))" for t in subset)
            reply = json.dumps(list(subset)) if style == "json" else ", ".join(subset)
            rules.append({"pattern": pattern, "reply": reply})
    return rules


def rules_yaml() -> str:
    def router(rules: list[tuple[str, str]]) -> dict[str, object]:
        return {"rules": [{"pattern": p, "reply": r, "confidence": 0.9} for p, r in rules],
                "default": {"reply": "billing", "confidence": 0.5}}

    models = {"router-frontier": router(FRONTIER_ROUTER), "router-tuned": router(TUNED_ROUTER),
              "tagger-frontier": {"rules": tag_rules(list(TAGS), "json"), "default": {"reply": "[]"}},
              # the tuned tagger never tags enterprise, and answers "none" (not a label) when it finds no tag
              "tagger-tuned": {"rules": tag_rules(["refund", "mobile", "urgent"], "comma"),
                               "default": {"reply": "none"}}}
    header = ("# Generated by datasets/tickets/build.py: keyword rules that play the ticket suites' models on the\n"
              "# loopback server (python -m evalkit.testing --rules suites/tickets/standin_models.yaml).\n")
    return header + json.dumps({"models": models}, indent=1) + "\n"  # JSON is YAML


def main() -> None:
    rows = tickets(random.Random(SEED))
    out = ROOT / "datasets" / "tickets" / "heldout.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (ROOT / "suites" / "tickets").mkdir(exist_ok=True)
    (ROOT / "suites" / "tickets" / "standin_models.yaml").write_text(rules_yaml(), encoding="utf-8")
    counts = {c: sum(r["category"] == c for r in rows) for c in CATEGORIES}
    print(f"{out}: {len(rows)} tickets, {counts}")


if __name__ == "__main__":
    main()
