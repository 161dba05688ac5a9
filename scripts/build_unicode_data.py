#!/usr/bin/env python3
"""Rebuild src/mailslot/protocol/unicode/uts39.json.gz from Unicode's own data files.

    python3 scripts/build_unicode_data.py UCD_DIR SECURITY_DIR

UCD_DIR holds Scripts.txt, ScriptExtensions.txt, PropertyValueAliases.txt and
DerivedCoreProperties.txt (Debian: `apt-get download unicode-data`, /usr/share/unicode/);
SECURITY_DIR holds UTS #39's confusables.txt and IdentifierStatus.txt
(unicode.org/Public/security/VERSION/). Where IdentifierStatus.txt cannot be fetched, Perl's
core Unicode::UCD (built from it) writes the same lines:

    perl -MUnicode::UCD=prop_invlist -e 'printf "# Version: %s\\n", Unicode::UCD::UnicodeVersion();
      my @l = prop_invlist("Identifier_Status=Allowed");
      while (my ($s, $e) = splice @l, 0, 2) { printf "%04X..%04X ; Allowed\\n", $s, $e - 1 }'

The output keeps only what username checks need: the confusable prototypes, the Allowed set,
Default_Ignorable_Code_Point, Script_Extensions (with Script where it has none) and script names.
"""

import argparse
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "src/mailslot/protocol/unicode/uts39.json.gz"
_VERSION = re.compile(r"^#\s*(?:Version:\s*|\S+-)(\d+\.\d+\.\d+)")


def data_lines(path: Path) -> Iterator[list[str]]:
    """The fields of each data line, comments and blank lines dropped."""
    with path.open(encoding="utf-8-sig") as file:
        for line in file:
            content = line.split("#", 1)[0].strip()
            if content:
                yield [field.strip() for field in content.split(";")]


def version_of(path: Path) -> str:
    """The version in a data file's header ("# Scripts-15.0.0.txt", "# Version: 18.0.0")."""
    with path.open(encoding="utf-8-sig") as file:
        for line in file:
            if not line.startswith("#"):
                break
            found = _VERSION.match(line)
            if found:
                return found.group(1)
    raise SystemExit(f"{path}: no version in its header")


def code_range(field: str) -> tuple[int, int]:
    first, _, last = field.partition("..")
    return int(first, 16), int(last or first, 16)


def merged(ranges: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Ranges sorted, touching ranges with equal values joined."""
    out: list[tuple[int, int, str]] = []
    for start, end, value in sorted(ranges):
        if out and out[-1][2] == value and out[-1][1] + 1 == start:
            out[-1] = (out[-1][0], end, value)
        else:
            out.append((start, end, value))
    return out


def ranges_with(path: Path, value: str) -> list[list[int]]:
    spans = [(*code_range(fields[0]), "") for fields in data_lines(path) if fields[1] == value]
    return [[start, end] for start, end, _ in merged(spans)]


def script_ranges(ucd: Path) -> tuple[list[tuple[int, int, str]], dict[str, str]]:
    """Script_Extensions as space-separated short names; Script where a character has none."""
    long_to_short: dict[str, str] = {}
    names: dict[str, str] = {}
    for fields in data_lines(ucd / "PropertyValueAliases.txt"):
        if fields[0] == "sc":
            long_to_short[fields[2]] = fields[1]
            names[fields[1]] = fields[2].replace("_", " ")
    by_code: dict[int, str] = {}
    for fields in data_lines(ucd / "Scripts.txt"):
        start, end = code_range(fields[0])
        by_code.update(dict.fromkeys(range(start, end + 1), long_to_short[fields[1]]))
    for fields in data_lines(ucd / "ScriptExtensions.txt"):
        start, end = code_range(fields[0])
        by_code.update(dict.fromkeys(range(start, end + 1), fields[1]))
    return merged([(code, code, scripts) for code, scripts in by_code.items()]), names


def build(ucd: Path, security: Path) -> dict[str, object]:
    prototypes = {
        chr(int(fields[0], 16)): "".join(chr(int(code, 16)) for code in fields[1].split())
        for fields in data_lines(security / "confusables.txt")
    }
    scripts, script_names = script_ranges(ucd)
    return {
        "about": "Reduced from Unicode's data by scripts/build_unicode_data.py; see README.md",
        "versions": {
            "confusables": version_of(security / "confusables.txt"),
            "identifier_status": version_of(security / "IdentifierStatus.txt"),
            "scripts": version_of(ucd / "Scripts.txt"),
            "script_extensions": version_of(ucd / "ScriptExtensions.txt"),
            "default_ignorable": version_of(ucd / "DerivedCoreProperties.txt"),
        },
        "prototypes": prototypes,
        "allowed": ranges_with(security / "IdentifierStatus.txt", "Allowed"),
        "default_ignorable": ranges_with(
            ucd / "DerivedCoreProperties.txt", "Default_Ignorable_Code_Point"
        ),
        "script_extensions": [list(span) for span in scripts],
        "script_names": script_names,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("ucd", type=Path, help="folder with the UCD files")
    parser.add_argument("security", type=Path, help="folder with the UTS #39 files")
    args = parser.parse_args()
    text = json.dumps(build(args.ucd, args.security), ensure_ascii=False, separators=(",", ":"))
    OUTPUT.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
