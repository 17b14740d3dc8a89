#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into fuzz/seeds/<target>/ from the
project's own examples: the signed test vectors, docs/protocol.md, MongoDB's manual's
examples in the filter tests, the example rules file, docs/routing.md and the rules tests.

Run from anywhere: python3 fuzz/make_seeds.py. The seeds are committed; rerun after the
examples change. Each seed is named by the hash of its content, so reruns are stable.
"""
import hashlib
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"


def write(target, text):
    data = text.encode() if isinstance(text, str) else text
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def fenced(path, lang):
    """The code blocks of a Markdown file whose info string starts with `lang`."""
    return re.findall(r"```" + lang + r"[^\n]*\n(.*?)```", path.read_text(), re.S)


def rust_strings(path):
    """The plain (non-raw) string literals of a Rust file, unescaped."""
    out = []
    for lit in re.findall(r'"((?:[^"\\]|\\.)*)"', path.read_text()):
        try:
            out.append(json.loads('"' + lit.replace("\\'", "'") + '"'))
        except json.JSONDecodeError:
            pass
    return out


def envelope():
    vectors = json.loads((ROOT / "interop/vectors/aixp-v1.json").read_text())
    for case in vectors["cases"]:
        write("envelope", compact(case["envelope"]))
    for block in fenced(ROOT / "docs/protocol.md", "json"):
        try:
            write("envelope", compact(json.loads(block)))
        except json.JSONDecodeError:
            pass


def filters():
    table = json.loads((ROOT / "crates/xchange-filter/tests/filter/mongo_examples.json").read_text())
    for group in table["groups"]:
        for case in group["cases"]:
            write("filter", compact(case["filter"]))
    # Sorts: the same JSON is also parsed as a sort.
    for sort in ([{"qty": 1}, {"item": -1}], {"size.h": -1}, [{"instock.qty": 1}], {"tags": 1}):
        write("filter", compact(sort))


def rules():
    write("rules", (ROOT / "crates/xchange-rules/examples/rules.toml").read_text())
    for block in fenced(ROOT / "docs/routing.md", "toml"):
        write("rules", block)
    for path in sorted((ROOT / "crates/xchange-rules").glob("**/*.rs")):
        for s in rust_strings(path):
            if s.startswith("version"):
                write("rules", s)
            elif "job." in s and "\n" not in s:  # a CEL condition in a test's list
                write("rules", f'version = 1\n[[rule]]\nname = "r"\nexpr = {json.dumps(s)}\n'
                               'then = { route = { taskdb = "x" } }\n')
        # The arguments of the tests' helpers: a rule body, or a CEL condition.
        text = path.read_text()
        for body in re.findall(r'one_rule\("((?:[^"\\]|\\.)*)"\)', text):
            write("rules", 'version = 1\n[[rule]]\nname = "r"\n' + json.loads('"' + body + '"') + "\n")
        for expr in re.findall(r'(?:with_expr|Expr::compile\("r",) ?\(?"((?:[^"\\]|\\.)*)"', text):
            src = json.loads('"' + expr + '"')
            write("rules", f'version = 1\n[[rule]]\nname = "r"\nexpr = {json.dumps(src)}\n'
                           'then = { route = { taskdb = "x" } }\n')


envelope()
filters()
rules()
for target in ("envelope", "filter", "rules"):
    files = list((SEEDS / target).iterdir())
    print(f"{target}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")
