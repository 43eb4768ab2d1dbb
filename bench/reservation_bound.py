"""How pessimistic the reservation is: for every module of every shipped persona, the request a
sub-agent sends (its three messages and its output schema, upstream outputs included at a
typical size), the input bound the router reserves (``tokens.input_bound``) against what real
BPE vocabularies count for the same text (OpenAI's cl100k_base and o200k_base, from
``bpe-openai``; Anthropic's and Gemini's vocabularies are not published, and the bound does not
depend on any). Printed per persona, for an English and a Japanese request, as ratios: the input
alone, and the whole worst case (input plus ``max_tokens`` of output, priced at the model's list
prices) against the same call with the counted input and all of ``max_tokens`` spent.

    .venv/bin/python bench/reservation_bound.py
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bpe_openai

from agentfirm.build_master.subagent import build_messages
from agentfirm.domain.models import Artifact, TaskSpec
from agentfirm.master.estimate import MAX_TOKENS
from agentfirm.outputs.types import schema_for
from agentfirm.personas.library import PersonaLibrary
from agentfirm.router.base import ChainEntry, ProviderRequest
from agentfirm.router.pricing import Pricer
from agentfirm.router.tokens import input_bound

ENGLISH = (
    "Size the European market for cargo e-bikes sold to last-mile delivery fleets over the next "
    "five years, compare the three largest makers, and recommend whether a mid-size courier "
    "should lease or buy."
)
JAPANESE = (
    "今後五年間にラストワンマイル配送事業者向けに販売される電動カーゴバイクの欧州市場規模を推計し、"
    "上位三社を比較したうえで、中規模の宅配業者がリースと購入のどちらを選ぶべきか提言してください。"
)
UPSTREAM_SENTENCE = {
    "en": "Fleet operators in Germany and the Netherlands report 18-24 month payback periods. ",
    "ja": "ドイツとオランダの車両運用事業者は、投資回収期間を十八か月から二十四か月と"
    "報告している。",
}
UPSTREAM_REPEATS = 40
"""An upstream output of a few thousand characters, as sub-agents write them."""
ENTRY = ChainEntry("anthropic", "claude-sonnet-4-5")


def texts_of(request: ProviderRequest) -> list[str]:
    schema = json.dumps(request.output_schema, ensure_ascii=False, separators=(",", ":"))
    return [m.content for m in request.messages] + [schema]


def requests_for(library: PersonaLibrary, language: str) -> dict[str, list[ProviderRequest]]:
    out: dict[str, list[ProviderRequest]] = {}
    for persona in library.all():
        plan = persona.to_plan()
        spec = TaskSpec(
            task_id="t_bench",
            request=ENGLISH if language == "en" else JAPANESE,
            persona=persona.id,
            persona_name=persona.name,
            plan=plan,
            budget_nano=0,
            assumptions=["The client operates in the EU."],
        )
        notes = {"summary": UPSTREAM_SENTENCE[language] * UPSTREAM_REPEATS, "findings": []}
        requests = []
        for module in plan.modules:
            upstream = {
                dep: Artifact(
                    task_id="t_bench",
                    module_id=dep,
                    version=1,
                    output_type="research_notes",
                    content=notes,
                )
                for dep in module.depends_on
            }
            messages = build_messages(spec, module, upstream)
            requests.append(
                ProviderRequest(
                    model=ENTRY.model,
                    messages=tuple(messages),
                    max_tokens=MAX_TOKENS[module.tier],
                    tier=module.tier,
                    output_schema=schema_for(module.output_type),
                )
            )
        out[persona.id] = requests
    return out


def main() -> None:
    library = PersonaLibrary.load()
    pricer = Pricer()
    encodings = {name: bpe_openai.get_encoding(name) for name in ("cl100k_base", "o200k_base")}
    print(f"model priced: {ENTRY.label}; ratio = reserved / counted (1.00 = no slack)")
    header = f"{'persona':28} {'lang':4} {'calls':>5} {'bound':>8}"
    header += "".join(f" {n[:6] + ' in':>10} {n[:6] + ' $':>10}" for n in encodings)
    print(header)
    overall: dict[str, list[float]] = {f"{n} {k}": [] for n in encodings for k in ("in", "$")}
    for language in ("en", "ja"):
        for persona_id, requests in requests_for(library, language).items():
            bound = sum(input_bound(r) for r in requests)
            worst = sum(
                pricer.worst_case_nano(ENTRY, input_bound(r), r.max_tokens) for r in requests
            )
            row = f"{persona_id:28} {language:4} {len(requests):>5} {bound:>8}"
            for name, encoding in encodings.items():
                counted = [sum(len(encoding.encode(t)) for t in texts_of(r)) for r in requests]
                spent = sum(
                    pricer.worst_case_nano(ENTRY, n, r.max_tokens)
                    for n, r in zip(counted, requests, strict=True)
                )
                ratio_in, ratio_usd = bound / sum(counted), worst / spent
                overall[f"{name} in"].append(ratio_in)
                overall[f"{name} $"].append(ratio_usd)
                row += f" {ratio_in:>10.2f} {ratio_usd:>10.2f}"
            print(row)
    summary: dict[str, Any] = {k: round(statistics.median(v), 2) for k, v in overall.items()}
    print("median ratios:", json.dumps(summary))


if __name__ == "__main__":
    main()
