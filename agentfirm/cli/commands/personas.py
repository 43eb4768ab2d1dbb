"""``personas list|show|validate|new`` and ``classify``: persona templates, and which one fits a
request. Everything here reads files in this process (personas are data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from agentfirm.cli.context import JsonOpt, context, env_for

personas_app = typer.Typer(help="Persona templates: list, show, validate.", no_args_is_help=True)


def _personas(env: dict[str, str]) -> Any:
    from agentfirm.personas.library import PersonaLibrary

    settings = context(env).settings
    return PersonaLibrary.load([settings.paths.config_dir / "personas"])


@personas_app.command("list")
def personas_list(as_json: JsonOpt = False) -> None:
    """Every persona: shipped ones and yours (config dir/personas)."""
    from agentfirm.cli.output import console, emit_json, print_rows

    library = _personas(env_for())
    rows = [
        {
            "id": p.id,
            "name": p.name,
            "modules": len(p.modules),
            "keywords": p.classification_keywords,
        }
        for p in library.all()
    ]
    if as_json:
        emit_json(rows)
        return
    print_rows(
        console(),
        ["id", "name", "modules", "keywords"],
        [[r["id"], r["name"], str(r["modules"]), ", ".join(r["keywords"][:6])] for r in rows],
    )


@personas_app.command("show")
def personas_show(
    persona_id: Annotated[str, typer.Argument(help="Persona id.")], as_json: JsonOpt = False
) -> None:
    """One persona: modules, waves, checklist."""
    from agentfirm.cli.output import console, emit_json, plain, print_rows

    persona = _personas(env_for()).get(persona_id)
    if as_json:
        data = persona.model_dump(mode="json")
        data["waves"] = persona.waves()
        emit_json(data)
        return
    out = console()
    out.print(f"[bold]{plain(persona.name)}[/] ({persona.id})\n{plain(persona.description)}\n")
    for number, wave in enumerate(persona.waves(), start=1):
        out.print(f"wave {number}: " + ", ".join(wave), markup=False)
    print_rows(
        out,
        ["module", "tier", "depends on", "output"],
        [[m.id, m.tier, ", ".join(m.depends_on) or "—", m.output_type] for m in persona.modules],
    )
    out.print("\nquality checklist:")
    for item in persona.quality_checklist:
        out.print(f"  - {item}", markup=False)


@personas_app.command("validate")
def personas_validate(
    files: Annotated[list[Path], typer.Argument(help="Persona YAML files.")],
) -> None:
    """Validate persona files: every problem with file and line; exit 2 if any."""
    from agentfirm.cli.output import console, error
    from agentfirm.errors import PersonaError
    from agentfirm.personas.library import load_persona_file

    bad = False
    for path in files:
        try:
            persona = load_persona_file(path)
        except PersonaError as err:
            bad = True
            for problem in err.problems:
                error(problem)
            continue
        console().print(f"{path}: ok — {persona.id}, {len(persona.modules)} modules", markup=False)
    if bad:
        raise typer.Exit(2)


def classify(
    request: Annotated[str, typer.Argument(help="The request to classify.")],
    as_json: JsonOpt = False,
) -> None:
    """Which persona fits a request, and why (nothing runs)."""
    from agentfirm.cli.output import console, emit_json
    from agentfirm.errors import BadInput

    if not request.strip():
        raise BadInput(
            "the request is empty", hint='say what you need, e.g. agentfirm classify "…"'
        )
    result = _personas(env_for()).classify(request)
    data = {
        "persona": result.persona,
        "stage": result.stage,
        "matched": result.matched,
        "scores": result.scores,
    }
    if as_json:
        emit_json(data)
        return
    out = console()
    out.print(f"persona: [bold]{result.persona or '— (ask)'}[/]  stage: {result.stage}")
    for persona, words in result.matched.items():
        out.print(
            f"  {persona}: {result.scores.get(persona, 0):g}  ({', '.join(words)})", markup=False
        )


@personas_app.command("new")
def personas_new(
    persona_id: Annotated[str, typer.Argument(help="Id and file stem, e.g. grant_proposal.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write (default: your personas dir).")
    ] = None,
) -> None:
    """Write a valid, commented starter persona to edit (never overwrites)."""
    from agentfirm.cli.output import console
    from agentfirm.errors import BadInput
    from agentfirm.personas.scaffold import scaffold_persona

    ctx = context(env_for())
    text = scaffold_persona(persona_id, name or persona_id.replace("_", " ").title())
    target_dir = directory or ctx.settings.paths.config_dir / "personas"
    target = target_dir / f"{persona_id}.yaml"
    if target.exists():
        raise BadInput(f"{target} exists already", hint="pick another id or edit that file")
    target_dir.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    console().print(
        f"wrote {target} — edit it, then: agentfirm personas validate {target}", markup=False
    )
