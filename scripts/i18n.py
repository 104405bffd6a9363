"""Keep Puente's translation catalogues in step with the source.

    python scripts/i18n.py extract            # the msgids the source uses, as a .pot on stdout
    python scripts/i18n.py update             # add new msgids to en and es, drop obsolete ones, compile .mo
    python scripts/i18n.py merge FRAGMENT...  # take Spanish from PO fragments into es
    python scripts/i18n.py check              # non-zero, one line per problem, when not current

Extraction follows src/puente/locale/babel.cfg (Jinja templates with jinja2.ext.i18n,
Python files) with the keywords Puente's code uses: `_`, `gettext`, `ngettext`,
`translate(request, msg)`, `N_(msg)` (puente.web.i18n.N_, which marks a message translated
later, e.g. a label in a dict), and the message of PuenteError and every subclass
(`raise NotFound("no such contact")`), which the web shows translated. Python is read with
`ast` rather than Babel's tokenizer, which took any string inside a keyword call
(`translate(request, ERRORS["phone"])` gave the msgid "phone").

Some messages reach gettext through a variable (an error's message, a state name shown
with `_(state)`) and cannot be extracted. An existing msgid is therefore obsolete only when
it is neither extracted nor still written as a string literal anywhere in the source.
"""

from __future__ import annotations

import ast
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "puente"
LOCALE = SOURCE / "locale"
MAPPING = LOCALE / "babel.cfg"
LANGUAGES = ("en", "es")
# The translated language: every msgid needs a msgstr there. English is the msgid itself.
TRANSLATED = "es"
KEYWORDS: dict[str, tuple[int, ...]] = {
    "_": (1,),
    "gettext": (1,),
    "ngettext": (1, 2),
    "N_": (1,),
    "translate": (2,),
    # The inbox's helpers that pass their message to gettext.
    "collab_text": (2,),
    "_form_error": (2,),
    "user_error": (2,),
    "kb_refusal": (2,),
    "Problem": (1,),
    # A workflow's publish checks (automation/workflows/checks.py): (where, message).
    "PublishProblem": (2,),
    # Meta's template rules (outbound/templates/rules.py): add(field, code, msgid, **params),
    # and the template service's MetaRefused with Meta's reason.
    "add": (3,),
    "_meta_refused": (2,),
}

MessageId = str | tuple[str, ...]


def po_path(lang: str) -> Path:
    return LOCALE / lang / "LC_MESSAGES" / "messages.po"


def _literal(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _message(node: ast.expr) -> str | None:
    """A literal, or the literal of `"... %(n)s ..." % values` (an error that carries its
    catalogue text in details["template"] is raised so)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _literal(node.left)
    return _literal(node)


def _call_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def extract_python(
    fileobj: Any, keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, tuple[str | None, ...], list[str]]]:
    """A Babel extraction method: calls to a keyword, with each positional argument that
    is a literal (Babel then picks the message arguments by the keyword's spec)."""
    tree = ast.parse(fileobj.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (name := _call_name(node)) in keywords:
            yield node.lineno, name, tuple(_message(arg) for arg in node.args), []


def error_classes() -> set[str]:
    """PuenteError and its subclasses: their message is shown translated (the web's
    error pages and forms pass it to gettext), so `raise NotFound("...")` is a keyword too."""
    bases: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                names = {
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                }
                bases.setdefault(node.name, set()).update(names)
    found = {"PuenteError"}
    while grown := {name for name, parents in bases.items() if parents & found} - found:
        found |= grown
    return found


def keywords() -> dict[str, tuple[int, ...]]:
    return {**{name: (1,) for name in error_classes()}, **KEYWORDS}


def _method_map() -> tuple[list[tuple[str, Any]], dict[str, dict[str, str]]]:
    with MAPPING.open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    return [
        (pattern, extract_python if method == "python" else method)
        for pattern, method in method_map
    ], options_map


def extract() -> Catalog:
    """Every message the source passes to gettext, in source order."""
    method_map, options_map = _method_map()
    template = Catalog(project="Puente", fuzzy=False)
    found = extract_from_dir(str(SOURCE), method_map, options_map, keywords=keywords())
    for filename, lineno, message, comments, context in found:
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def source_literals() -> str:
    """All the string literals of the Python source, and the templates' text, to search."""
    parts: list[str] = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            value = _literal(node) if isinstance(node, ast.expr) else None
            if value and value.strip():
                # Stripped: a sentence kept apart to append to Meta's text starts with a space.
                parts.append(value.strip())
    for path in sorted(SOURCE.rglob("*.html")):
        parts.append(path.read_text(encoding="utf-8"))
    return "\x00".join(parts)


def _key(message_id: MessageId) -> str:
    return message_id if isinstance(message_id, str) else message_id[0]


def _still_used(message_id: MessageId, literals: str) -> bool:
    return all(
        f"\x00{text}\x00" in literals or f'"{text}"' in literals or f"'{text}'" in literals
        for text in ([message_id] if isinstance(message_id, str) else message_id)
    )


def read_catalog(path: Path, lang: str) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=lang)


def write_catalog(catalog: Catalog, path: Path) -> None:
    buf = io.BytesIO()
    write_po(buf, catalog, no_location=True, omit_header=False, width=0)
    path.write_bytes(buf.getvalue())
    path.with_suffix(".mo").write_bytes(compiled(catalog))


def compiled(catalog: Catalog) -> bytes:
    buf = io.BytesIO()
    write_mo(buf, catalog)
    return buf.getvalue()


def merged(existing: Catalog, template: Catalog, literals: str) -> Catalog:
    """The catalogue with the template's msgids: existing translations kept, in their
    order, then new msgids at the end; msgids no longer in the source removed."""
    wanted = {_key(m.id) for m in template if m.id}
    out = Catalog(locale=existing.locale, project="Puente", fuzzy=False)
    out.mime_headers = existing.mime_headers
    out.header_comment = existing.header_comment
    for message in existing:
        if not message.id:
            continue
        if _key(message.id) in wanted or _still_used(message.id, "\x00" + literals + "\x00"):
            out[message.id] = message
    for message in template:
        if message.id and message.id not in out:
            out[message.id] = Message(message.id, "" if isinstance(message.id, str) else ("", ""))
    return out


def update() -> None:
    template = extract()
    literals = source_literals()
    for lang in LANGUAGES:
        path = po_path(lang)
        write_catalog(merged(read_catalog(path, lang), template, literals), path)


def merge(fragments: list[str]) -> list[str]:
    """Spanish from the fragments for msgids of the catalogue. A msgid the catalogue lacks
    is added (to en too) when the source writes it as a literal: a message shown through a
    variable, which extraction cannot see. Returns what was left out, and why."""
    path = po_path(TRANSLATED)
    catalog = read_catalog(path, TRANSLATED)
    english = read_catalog(po_path("en"), "en")
    literals = "\x00" + source_literals() + "\x00"
    left_out: list[str] = []
    for fragment in fragments:
        for message in read_catalog(Path(fragment), TRANSLATED):
            if not message.id or not _translated(message.string):
                continue
            target = catalog.get(message.id)
            if target is None and _still_used(message.id, literals):
                empty = "" if isinstance(message.id, str) else ("", "")
                english[message.id] = Message(message.id, empty)
                catalog[message.id] = target = Message(message.id, empty)
            if target is None:
                left_out.append(f"{fragment}: not in the source: {_key(message.id)!r}")
                continue
            target.string = message.string
            target.flags.discard("fuzzy")
    write_catalog(english, po_path("en"))
    write_catalog(catalog, path)
    return left_out


def _translated(string: MessageId | None) -> bool:
    if isinstance(string, str):
        return bool(string)
    return bool(string) and all(string or ())


def check() -> list[str]:
    template = extract()
    literals = "\x00" + source_literals() + "\x00"
    problems: list[str] = []
    for lang in LANGUAGES:
        path = po_path(lang)
        rel = path.relative_to(ROOT)
        catalog = read_catalog(path, lang)
        for message in template:
            if message.id and catalog.get(message.id) is None:
                problems.append(f"{rel}: missing msgid {_key(message.id)!r} (run update)")
        wanted = {_key(m.id) for m in template if m.id}
        for message in catalog:
            if not message.id:
                continue
            if _key(message.id) not in wanted and not _still_used(message.id, literals):
                problems.append(f"{rel}: obsolete msgid {_key(message.id)!r} (run update)")
            if lang == TRANSLATED and not _translated(message.string):
                problems.append(f"{rel}: no translation for {_key(message.id)!r}")
            if lang == TRANSLATED and message.fuzzy:
                problems.append(f"{rel}: fuzzy translation for {_key(message.id)!r}")
        mo = path.with_suffix(".mo")
        if not mo.exists() or mo.read_bytes() != compiled(catalog):
            problems.append(f"{mo.relative_to(ROOT)}: not compiled from its .po (run update)")
    return problems


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "extract" and not args:
        buf = io.BytesIO()
        write_po(buf, extract(), width=0)
        sys.stdout.write(buf.getvalue().decode())
        return 0
    if command == "update" and not args:
        update()
        return 0
    if command == "merge" and args:
        for line in merge(args):
            print(line, file=sys.stderr)
        return 0
    if command == "check" and not args:
        problems = check()
        for line in problems:
            print(line)
        if problems:
            print(
                f"{len(problems)} problem(s): the translation catalogues are not current",
                file=sys.stderr,
            )
        return 1 if problems else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
