"""Write personas/persona.schema.json from the Persona model, for editors' autocompletion.

python scripts/gen_persona_schema.py          # (re)write the file
python scripts/gen_persona_schema.py --check  # exit 1 if the file is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agentfirm.personas.scaffold import SCHEMA_FILE, render_persona_schema

TARGET = Path(__file__).resolve().parents[1] / "personas" / SCHEMA_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the file is current")
    args = parser.parse_args(argv)
    text = render_persona_schema()
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else None
    if args.check:
        if current != text:
            sys.stderr.write(f"{TARGET} is out of date: run python scripts/gen_persona_schema.py\n")
            return 1
        return 0
    if current != text:
        TARGET.write_text(text, encoding="utf-8")
        sys.stderr.write(f"wrote {TARGET}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
