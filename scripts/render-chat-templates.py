#!/usr/bin/env python3
"""Renders the chat-template fixtures the way Hugging Face `transformers` does
(`apply_chat_template`: an ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and
loopcontrols; `tojson` as json.dumps without ASCII escaping; `raise_exception`; `strftime_now`).

    python3 scripts/render-chat-templates.py server/tests/fixtures/chat_templates > rendered.json

The Rust side (server/src/llm/local/template.rs) must render every case the same;
`scripts/test.sh` runs this again with the real jinja2 and checks the committed file matches.
Needs jinja2 only (the MLflow venv has it)."""

import json
import sys
from datetime import datetime
from pathlib import Path

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

# What the server passes besides messages and tools (llm/local/template.rs); date_string pins
# Llama 3's date so the fixture does not change by the day (strftime_now is tested on its own).
CONTEXT = {"add_generation_prompt": True, "bos_token": "", "eos_token": "", "date_string": "03 Dec 2026"}


def environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main(folder):
    folder = Path(folder)
    cases = json.loads((folder / "cases.json").read_text())
    env = environment()
    rendered = {}
    for path in sorted(folder.glob("*.jinja")):
        template = env.from_string(path.read_text())
        out = rendered[path.stem] = {}
        for case in cases:
            try:
                prompt = template.render(messages=case["messages"], tools=case.get("tools"), **CONTEXT)
                out[case["name"]] = {"prompt": prompt}
            except jinja2.exceptions.TemplateError as e:
                out[case["name"]] = {"error": str(e)}
    json.dump(rendered, sys.stdout, ensure_ascii=False, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
