"""Write ``sample.pdf``, the research assistant's sample document, from the text below (fpdf2).

The text is the petriflow project's own, released under CC0 1.0 (public
domain dedication), like the corpus next to it. Run it again after editing
the text; the output is byte for byte the same for the same text (the
creation date is fixed), so the committed PDF stays reproducible:

    python models/research_assistant/data/make_sample_pdf.py
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

TITLE = "Checking AI Workflows Before They Run"
AUTHOR = "the petriflow project (CC0 1.0)"

PAGES: list[list[tuple[str, str]]] = [
    [
        ("h", "Checking AI Workflows Before They Run"),
        ("p", "A short report by the petriflow project, released under CC0 1.0."),
        ("h", "1. The problem"),
        ("p", "Workflows that chain several language models fail in ways that are hard to see in advance. "
              "A router may send a question to a branch that never joins, a loop may run without end, and a "
              "retry policy may double the cost of a busy hour."),
        ("p", "Teams usually find these faults in production, after a customer waits for an answer that never "
              "comes. Testing a few happy paths does not reveal them, because the faults live in rare "
              "combinations of routes, failures and retries."),
        ("h", "2. Workflows as Petri nets"),
        ("p", "A Petri net has places, transitions and tokens. Each step of a workflow becomes a transition "
              "that consumes tokens from its input places and produces tokens in its output places. A "
              "parallel split puts one token on each branch; an AND-join waits for all of them."),
        ("p", "A workflow net is sound when every run can finish, no token is left behind when it finishes, and "
              "every step can occur. Soundness can be decided by exploring the reachable markings of the net, "
              "and a failed check comes with a witness: the sequence of steps that leads to the fault."),
    ],
    [
        ("h", "3. Bounded loops and retries"),
        ("p", "A loop without a bound makes the state space infinite. Giving every loop a budget place with a "
              "fixed number of tokens keeps the net bounded, so the checker can prove that the loop ends."),
        ("p", "Retries are modelled the same way: a retry counter place holds the attempts that are left. A "
              "fallback step takes over when the attempts are spent, and the checker sees that path too."),
        ("h", "4. Simulation with measured latency"),
        ("p", "The same net can be simulated as a discrete event system. Each transition draws its latency "
              "from a distribution fitted to traces of real runs, and each route draws its branch from "
              "measured probabilities."),
        ("p", "Simulation predicts the median and the tail latency of a workflow, its cost per case and the "
              "effect of a rate limit, before any money is spent on real calls. Comparing the prediction with "
              "a measured run shows where the profile is wrong."),
    ],
    [
        ("h", "5. Running what was verified"),
        ("p", "An executor that plays the token game of the verified net runs exactly the behaviour that was "
              "checked. Every step output is saved before the next step reads it, so a crashed run can resume "
              "without repeating completed calls."),
        ("p", "Each attempt writes a trace record with its start, end, tokens and cost. Fitting a profile to "
              "these traces closes the loop between what was predicted and what happened."),
        ("h", "6. Retrieval with citations"),
        ("p", "A research assistant splits a document into chunks with stable identifiers, extracts key "
              "points, searches a corpus for each point and writes a synthesis. Every citation must name a "
              "chunk or a document that exists, and a final step checks that it does."),
        ("p", "Keyword ranking with BM25 is a strong baseline for such searches: it needs no training, runs "
              "offline and explains its scores by the terms a query shares with a document."),
    ],
]


def paragraphs(page: int) -> list[str]:
    """The text of each heading and paragraph of page ``page`` (1-based), as written above."""
    return [text for _, text in PAGES[page - 1]]


def build(out: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(TITLE)
    pdf.set_author(AUTHOR)
    pdf.set_subject("Sample document for petriflow's research_assistant workflow; CC0 1.0")
    pdf.set_creation_date(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    pdf.set_auto_page_break(auto=False)
    pdf.set_margins(20, 20, 20)
    for blocks in PAGES:
        pdf.add_page()
        for kind, text in blocks:
            if kind == "h":
                pdf.set_font("Helvetica", "B", 14)
                pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
            else:
                pdf.set_font("Helvetica", "", 11)
                pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
    pdf.output(str(out))


if __name__ == "__main__":
    build(Path(__file__).resolve().parent / "sample.pdf")
