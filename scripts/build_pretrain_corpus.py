"""Clean the unlabelled pretraining corpus: `make pretrain-corpus`.

Reads the three inputs of ../shared/pretrain-corpus/ (see its SOURCES.md), cleans them line by line,
filters their paragraphs, and writes

- data/pretrain/corpus.jsonl (git-ignored): one JSON object per document, `{"source", "doc", "line",
  "text"}`, the document's surviving paragraphs joined by "\\n";
- data/pretrain/corpus.json (committed): input and output files with sizes and sha256, characters and
  paragraphs before and after, and for every rule what it removed or changed, with examples;
- data/pretrain/CORPUS.md (committed): the same, for people.

JSONL and not blank-line-separated text: a document keeps its provenance (input file, title, first
line) next to its text, so pretraining can report or weight per source and a bad paragraph can be
traced back to its input line; JSON escaping leaves no doubt about where a document or paragraph ends;
and the file still streams one document per line.

Line rules, in order: escapes (literal `<U+00A0>`, HTML entities, the `?` a GBK round trip left for
a lost space), invisible characters, Markdown (front matter, `<!-- -->` markers, heading marks,
tables, links), page boilerplate of the gov.cn dumps, full-width digits and Latin letters, whitespace.
Paragraph rules (a paragraph is a cleaned non-empty line), in order: too short, mostly non-Chinese,
superseded (a web-dump work report of a year the clean folder has whole), overlap with the project's
own texts (data/raw and the annotation exports: no evaluation text may leak into pretraining), and
exact duplicates anywhere earlier in the corpus. The clean 2003-2018 reports are read first, so
where the two work-report sources overlap the clean text is the one kept.

Standard library only, so that it runs before the package is installed.

Usage: python scripts/build_pretrain_corpus.py [--input DIR] [--output data/pretrain/corpus.jsonl]
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import html
import json
import os
import re
import sys
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = ROOT.parent / "shared" / "pretrain-corpus"
DEFAULT_OUTPUT = ROOT / "data" / "pretrain" / "corpus.jsonl"
DEFAULT_EXCLUDE_TEXTS = ("data/raw/**/*.txt",)
DEFAULT_EXCLUDE_EXPORTS = ("annotations/*.json",)
REBUILD_COMMAND = "make pretrain-corpus  (python scripts/build_pretrain_corpus.py)"

CLEAN_REPORTS = "national_work_reports_2003_2018"
WEB_REPORTS = "national_work_reports_1954_2018.txt"
LAWS = "national_laws.txt"

MIN_CHARS = 8
"""Paragraphs with fewer non-space characters are dropped: what is left at that length is headings
("第一章 总则"), signatures, dates and page debris, which teach a masked LM little."""
MIN_CJK_SHARE = 0.5
"""Paragraphs in which less than half of the letters and symbols are CJK ideographs are dropped (Latin
text, URLs, symbol tables; a line of only digits and punctuation, e.g. a date, counts as 0)."""
OVERLAP_CHARS = 32
"""A paragraph sharing a run of this many normalised characters with a project text is dropped: long
enough that only a quotation, not a stock phrase, matches; short enough to catch a reworded copy."""
EXAMPLES_PER_RULE = 5
EXAMPLE_WIDTH = 90

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
WIDE = CJK + "\u2e80-\u2fff\u3000-\u303f\uff00-\uffef“”‘’—…·《》"
CJK_CHAR = re.compile(f"[{CJK}]")
UNICODE_ESCAPE = re.compile(r"<U\+([0-9A-Fa-f]{4,6})>")
HTML_ENTITY = re.compile(r"&(?:#\d{1,7}|#x[0-9A-Fa-f]{1,6}|[A-Za-z]{2,8});")
LOST_SPACE = re.compile(f"(?<=[{WIDE}])\\?+|^\\?+(?=[{WIDE}])")
INVISIBLE = re.compile("[\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff\ue000-\uf8ff\x00-\x08\x0b-\x1f\x7f-\x9f]")
COMMENT_LINE = re.compile(r"^\s*<!--.*-->\s*$")
HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+")
TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
LINK = re.compile(r"\[([^\]]*)\]\((?:https?://|/)[^)]*\)")
FOOTNOTE = re.compile(r"\s*\[\d{1,2}\]\s*$")
EMPHASIS = re.compile(r"\*\*|__")
FRONT_MATTER_KEY = re.compile(r"^[A-Za-z_][\w-]*\s*:")
GOV_CN_HEADER = re.compile(r"中央政府门户网站\s*www\.gov\.cn.*?来源[:：]\s*\S+\s*$")
BREADCRUMB = re.compile(r"^\s*当前位置[:：]\s*首页\s*>>")
RELATED_LINKS = re.compile(r"^\s*相关链接")
PHOTO_CREDIT = re.compile(r"新华社记者\s*\S{2,4}\s*摄\s*$")
DATELINE = re.compile(r"^\s*新华社\S{0,12}电\s*$")
FULLWIDTH_ALNUM = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")
FULLWIDTH_POINT = re.compile("(?<=[0-9\uff10-\uff19])\uff0e(?=[0-9\uff10-\uff19])")
SPACES = re.compile(r"[^\S\n]+")
REPEATED_ESCAPE = re.compile(r"(<U\+[0-9A-Fa-f]{4}>|\\u[0-9a-f]{4})\1{2,}")
YEAR = re.compile(r"^(\d{4})年")
WEB_REPORT_HEADING = re.compile(r"^###\s+(\d{4})年政府工作报告\s*$")


class CorpusError(ValueError):
    """An input that cannot be read as the cleaning expects; the message names the file and line."""


@dataclass
class Line:
    number: int
    text: str


@dataclass
class Document:
    source: str
    doc: str
    line: int
    lines: list[Line] = field(default_factory=list)
    year: int | None = None


@dataclass
class RuleStats:
    """What one rule did: lines (or paragraphs) it changed or dropped, characters it took away."""

    description: str
    changed: int = 0
    dropped: int = 0
    characters_removed: int = 0
    examples: dict[str, list[dict]] = field(default_factory=dict)

    def record(self, source: str, line: int, before: str, after: str | None) -> None:
        if after is None:
            self.dropped += 1
            self.characters_removed += len(before)
        else:
            self.changed += 1
            self.characters_removed += len(before) - len(after)
        kept = self.examples.setdefault(source, [])
        if len(kept) < EXAMPLES_PER_RULE:
            shown_before, shown_after = excerpt(visible(before), None if after is None else visible(after))
            if all(e["before"] != shown_before for e in kept):
                kept.append({"source": source, "line": line, "before": shown_before, "after": shown_after})

    def chosen_examples(self) -> list[dict]:
        """Up to EXAMPLES_PER_RULE examples, taken in turn from each source so that all are shown."""
        queues = [list(v) for _, v in sorted(self.examples.items())]
        chosen: list[dict] = []
        while len(chosen) < EXAMPLES_PER_RULE and any(queues):
            for queue in queues:
                if queue and len(chosen) < EXAMPLES_PER_RULE:
                    chosen.append(queue.pop(0))
        return chosen

    def as_json(self) -> dict:
        return {
            "description": self.description,
            "changed": self.changed,
            "dropped": self.dropped,
            "characters_removed": self.characters_removed,
            "examples": self.chosen_examples(),
        }


def excerpt(before: str, after: str | None) -> tuple[str, str | None]:
    """The part of a long line around its first change, so that an example shows what changed."""
    if after is None:
        return clip(before, 0), None
    start = 0
    while start < min(len(before), len(after)) and before[start] == after[start]:
        start += 1
    start = max(0, start - 20)
    return clip(before, start), clip(after, start)


def clip(text: str, start: int) -> str:
    end = start + EXAMPLE_WIDTH
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


LINE_RULES = {
    "escapes": "literal `<U+XXXX>` escapes and HTML entities turned into their character; `?` that a "
    "GBK round trip left for a lost space next to Chinese text removed",
    "invisible": "zero-width, bidirectional, private-use and control characters removed",
    "markdown": "front matter, `<!-- ... -->` markers, HTML tags, heading `#` marks, table rules and "
    "pipes, links, emphasis and footnote marks removed (the text they wrap kept)",
    "boilerplate": "gov.cn page header and footer lines, breadcrumbs, related-link lists and the "
    "headlines they repeat, photo credits, news-agency datelines removed",
    "fullwidth": "full-width digits and Latin letters (and a full-width point between digits) turned "
    "into ASCII, as the project's texts write them",
    "whitespace": "every kind of space (U+00A0, U+3000 indents, tabs) turned into one ASCII space, runs "
    "collapsed, line ends stripped",
}
PARAGRAPH_RULES = {
    "too_short": f"paragraphs under {MIN_CHARS} non-space characters dropped",
    "non_chinese": f"paragraphs in which CJK ideographs are under {MIN_CJK_SHARE:.0%} of the characters that are "
    "not space, digit or punctuation dropped",
    "superseded": "paragraphs of a web-dump work report whose year the clean 2003-2018 folder has whole "
    "(the dump truncates 2006-2009 and runs 2014 into one line) dropped",
    "eval_overlap": f"paragraphs equal to, contained in, or sharing {OVERLAP_CHARS} normalised characters "
    "with a text of data/raw or of an annotation export dropped",
    "duplicate": "paragraphs whose normalised text (NFKC, no whitespace) appeared earlier in the corpus dropped",
}


def new_stats() -> dict[str, RuleStats]:
    return {name: RuleStats(description) for name, description in {**LINE_RULES, **PARAGRAPH_RULES}.items()}


# --- reading the inputs -------------------------------------------------------------------------


def read_lines(path: Path) -> list[str]:
    """The file's lines, decoded strictly: a byte that is not UTF-8 is an error naming its line."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CorpusError(f"{path}: cannot read ({error.strerror})") from error
    lines = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError as error:
            raise CorpusError(f"{path}:{number}: not UTF-8 ({error.reason} at byte {error.start})") from error
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    return lines


def read_clean_reports(folder: Path, stats: dict[str, RuleStats]) -> list[Document]:
    """One document per file of the clean 2003-2018 folder; its year comes from the file name."""
    if not folder.is_dir():
        raise CorpusError(f"{folder}: missing (expected the folder of clean 2003-2018 work reports)")
    documents = []
    for path in sorted(folder.glob("*.txt")):
        year = YEAR.match(path.name)
        if not year:
            raise CorpusError(f"{path}: file name does not start with a year (YYYY年...)")
        lines = [Line(n, t) for n, t in enumerate(read_lines(path), start=1)]
        documents.append(Document(f"{folder.name}/{path.name}", path.stem, 1, lines, int(year.group(1))))
    if not documents:
        raise CorpusError(f"{folder}: no .txt files")
    return documents


def read_web_reports(path: Path, stats: dict[str, RuleStats]) -> list[Document]:
    """The web-dump reports, one document per `### YYYY年政府工作报告` heading (the gatherer's
    separator, dropped: the report's own title line follows it)."""
    documents: list[Document] = []
    for number, text in enumerate(read_lines(path), start=1):
        heading = WEB_REPORT_HEADING.match(text)
        if heading:
            stats["markdown"].record(path.name, number, text, None)
            documents.append(Document(path.name, text.lstrip("# ").strip(), number, [], int(heading.group(1))))
        elif documents:
            documents[-1].lines.append(Line(number, text))
        elif text.strip():
            raise CorpusError(f"{path}:{number}: text before the first '### YYYY年政府工作报告' heading")
    if not documents:
        raise CorpusError(f"{path}: no '### YYYY年政府工作报告' headings")
    return documents


def read_markdown_laws(path: Path, stats: dict[str, RuleStats]) -> list[Document]:
    """The laws, one document per `# title` heading; front matter blocks (`---` / `key: value` /
    `---`, where the Hugo book theme's `bookCollapseSection` lives) are dropped whole."""
    lines = read_lines(path)
    documents: list[Document] = []
    index = 0
    while index < len(lines):
        text = lines[index]
        end = front_matter_end(lines, index)
        if end is not None:
            for number in range(index, end + 1):
                stats["markdown"].record(path.name, number + 1, lines[number], None)
            index = end + 1
            continue
        heading = HEADING.match(text)
        if heading and len(heading.group(1)) == 1:
            documents.append(Document(path.name, text[heading.end() :].strip(), index + 1))
        if not documents:
            if text.strip():
                raise CorpusError(f"{path}:{index + 1}: text before the first '# title' heading")
        else:
            documents[-1].lines.append(Line(index + 1, text))
        index += 1
    if not documents:
        raise CorpusError(f"{path}: no '# title' headings")
    return documents


def front_matter_end(lines: list[str], start: int) -> int | None:
    """Index of the closing `---` if a front matter block opens at `start`, else None."""
    if lines[start].strip() != "---":
        return None
    for index in range(start + 1, min(len(lines), start + 30)):
        text = lines[index].strip()
        if text == "---":
            return index
        if text and not FRONT_MATTER_KEY.match(text):
            return None
    return None


# --- line rules ---------------------------------------------------------------------------------


def fix_escapes(text: str) -> str:
    text = UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = HTML_ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
    return LOST_SPACE.sub(" ", text)


def drop_invisible(text: str) -> str:
    return INVISIBLE.sub("", text)


def strip_markdown(text: str) -> str | None:
    if COMMENT_LINE.match(text) or TABLE_RULE.match(text) or text.strip() == "---":
        return None
    text = HEADING.sub("", text)
    if text.lstrip().startswith("|"):
        text = " ".join(cell.strip() for cell in text.strip().strip("|").split("|"))
    text = LINK.sub(lambda m: m.group(1), text)
    text = EMPHASIS.sub("", text)
    text = FOOTNOTE.sub("", text)
    return HTML_TAG.sub("", text)


def strip_boilerplate(text: str, related: set[str]) -> str | None:
    """None for a line that is page furniture rather than report text. `related` holds the headlines
    a "相关链接" line of the same document lists; the page repeats them as lines of their own."""
    if GOV_CN_HEADER.search(text) or BREADCRUMB.match(text) or RELATED_LINKS.match(text):
        return None
    if DATELINE.match(text) or PHOTO_CREDIT.search(text):
        return None
    if related and normalise(text) in related:
        return None
    return text


def to_halfwidth(text: str) -> str:
    text = FULLWIDTH_POINT.sub(".", text)
    return FULLWIDTH_ALNUM.sub(lambda m: chr(ord(m.group(0)) - 0xFEE0), text)


def normalise_spaces(text: str) -> str | None:
    """One ASCII space where there was any run of spaces. A space between two Chinese characters is
    kept: the model's tokenizer skips it anyway, and in these texts it often separates an article
    number from its heading ("第四十三条 工会经费") or two titles, which jieba should not read as one."""
    text = "".join(" " if unicodedata.category(c) == "Zs" or c == "\t" else c for c in text)
    return SPACES.sub(" ", text).strip() or None


def related_headlines(document: Document) -> set[str]:
    """The headlines listed on a document's "相关链接 · a · b" lines (escapes fixed first)."""
    headlines = set()
    for line in document.lines:
        text = normalise_spaces(fix_escapes(line.text)) or ""
        if RELATED_LINKS.match(text):
            headlines |= {normalise(part) for part in text.split("·")[1:] if normalise(part)}
    return headlines


def clean_line(text: str, source: str, number: int, related: set[str], stats: dict[str, RuleStats]) -> str | None:
    steps: list[tuple[str, Callable[[str], str | None]]] = [
        ("escapes", fix_escapes),
        ("invisible", drop_invisible),
        ("markdown", strip_markdown),
        ("boilerplate", lambda t: strip_boilerplate(t, related)),
        ("fullwidth", to_halfwidth),
        ("whitespace", normalise_spaces),
    ]
    for name, step in steps:
        cleaned = step(text)
        if cleaned is not None and not cleaned.strip():
            cleaned = None  # nothing but what this rule removed: the rule dropped the line
        if cleaned != text:
            stats[name].record(source, number, text, cleaned)
        if cleaned is None:
            return None
        text = cleaned
    return text


# --- paragraph rules ----------------------------------------------------------------------------


def normalise(text: str) -> str:
    """The form paragraphs are compared in: NFKC (so full-width and half-width forms agree), no
    whitespace at all (the model sees none)."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def paragraph_key(text: str) -> bytes:
    return hashlib.blake2b(normalise(text).encode("utf-8"), digest_size=16).digest()


def cjk_share(text: str) -> float:
    """CJK ideographs among the characters that are neither space, digit nor punctuation: a budget
    line full of figures ("收入合计27,203,319,000元") is still Chinese text, a Latin or symbol line is not."""
    letters = [c for c in text if unicodedata.category(c)[0] not in "ZNP" and not c.isspace()]
    return sum(1 for c in letters if CJK_CHAR.match(c)) / len(letters) if letters else 0.0


@dataclass
class EvalTexts:
    """The project's own texts, normalised: every paragraph's key, the texts joined (to find short
    paragraphs inside them) and every OVERLAP_CHARS-character run (to find long shared passages)."""

    keys: set[bytes]
    joined: str
    runs: set[str]
    files: list[str]

    def overlaps(self, text: str) -> bool:
        key = normalise(text)
        if paragraph_key(text) in self.keys:
            return True
        if len(key) < OVERLAP_CHARS:
            return key in self.joined
        return any(key[i : i + OVERLAP_CHARS] in self.runs for i in range(len(key) - OVERLAP_CHARS + 1))


def load_eval_texts(root: Path, text_globs: Iterable[str], export_globs: Iterable[str]) -> EvalTexts:
    texts: list[str] = []
    files: list[str] = []
    for pattern in text_globs:
        for path in sorted(Path(p) for p in glob.glob(str(root / pattern), recursive=True)):
            texts.append("\n".join(read_lines(path)))
            files.append(str(path.relative_to(root)))
    for pattern in export_globs:
        for path in sorted(Path(p) for p in glob.glob(str(root / pattern), recursive=True)):
            texts += export_texts(path)
            files.append(str(path.relative_to(root)))
    if not texts:
        raise CorpusError(
            f"{root}: no project texts found under {list(text_globs) + list(export_globs)}; "
            "refusing to build a corpus that cannot be checked for evaluation text"
        )
    paragraphs = [normalise(p) for t in texts for p in t.split("\n") if normalise(p)]
    runs = {p[i : i + OVERLAP_CHARS] for p in paragraphs for i in range(len(p) - OVERLAP_CHARS + 1)}
    return EvalTexts({paragraph_key(p) for p in paragraphs}, "\x00".join(paragraphs), runs, files)


def export_texts(path: Path) -> list[str]:
    """Every task text of a Label Studio JSON export (a list of tasks with `data.text`)."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorpusError(f"{path}: not a readable JSON export ({error})") from error
    if not isinstance(tasks, list):
        raise CorpusError(f"{path}: expected a list of Label Studio tasks, found {type(tasks).__name__}")
    texts = []
    for index, task in enumerate(tasks):
        text = task.get("data", {}).get("text") if isinstance(task, dict) else None
        if not isinstance(text, str):
            raise CorpusError(f"{path}: task {index} has no data.text string")
        texts.append(text)
    return texts


# --- the whole corpus ---------------------------------------------------------------------------


@dataclass
class Totals:
    documents: int = 0
    paragraphs: int = 0
    characters: int = 0
    cjk_characters: int = 0

    def add(self, text: str) -> None:
        self.paragraphs += 1
        self.characters += len(text)
        self.cjk_characters += len(CJK_CHAR.findall(text))


def read_inputs(folder: Path, stats: dict[str, RuleStats]) -> list[Document]:
    """All documents, the clean reports first so that duplicates of them in the dump are the ones dropped."""
    return (
        read_clean_reports(folder / CLEAN_REPORTS, stats)
        + read_web_reports(folder / WEB_REPORTS, stats)
        + read_markdown_laws(folder / LAWS, stats)
    )


def clean_corpus(
    documents: list[Document], eval_texts: EvalTexts, stats: dict[str, RuleStats], after: Totals
) -> Iterator[dict]:
    """The surviving documents as output records; `stats` and `after` are filled in on the way."""
    clean_years = {d.year for d in documents if d.source.startswith(CLEAN_REPORTS + "/")}
    seen: set[bytes] = set()
    for document in documents:
        related = related_headlines(document)
        superseded = document.source == WEB_REPORTS and document.year in clean_years
        paragraphs = []
        for line in document.lines:
            if not line.text.strip():
                continue
            text = clean_line(line.text, document.source, line.number, related, stats)
            if not text:
                continue
            rule = paragraph_rule(text, superseded, eval_texts, seen)
            if rule:
                stats[rule].record(document.source, line.number, text, None)
                continue
            seen.add(paragraph_key(text))
            paragraphs.append(text)
            after.add(text)
        if paragraphs:
            after.documents += 1
            yield {"source": document.source, "doc": document.doc, "line": document.line, "text": "\n".join(paragraphs)}


def paragraph_rule(text: str, superseded: bool, eval_texts: EvalTexts, seen: set[bytes]) -> str | None:
    """The first paragraph rule that drops `text`, or None to keep it."""
    if len(re.sub(r"\s", "", text)) < MIN_CHARS:
        return "too_short"
    if cjk_share(text) < MIN_CJK_SHARE:
        return "non_chinese"
    if superseded:
        return "superseded"
    if eval_texts.overlaps(text):
        return "eval_overlap"
    if paragraph_key(text) in seen:
        return "duplicate"
    return None


def write_jsonl_atomically(records: Iterable[dict], path: Path) -> tuple[str, int]:
    """Write records to `path` through a temporary file beside it; return its sha256 and size.
    A crash or an error in the cleaning leaves the previous corpus in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as handle:
            for record in records:
                data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
                digest.update(data)
                size += len(data)
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return digest.hexdigest(), size


def write_text_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_files(folder: Path) -> list[Path]:
    return [*sorted((folder / CLEAN_REPORTS).glob("*.txt")), folder / WEB_REPORTS, folder / LAWS]


def describe_inputs(folder: Path) -> list[dict]:
    """Each input file's size, sha256 and counts: `characters` as SOURCES.md counts them (line breaks
    included), `paragraph_characters` those of its non-empty lines (comparable with the output's)."""
    described = []
    for path in input_files(folder):
        lines = read_lines(path)
        filled = [line for line in lines if line.strip()]
        described.append(
            {
                "path": str(path.relative_to(folder)),
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
                "characters": len(path.read_text(encoding="utf-8")),
                "lines": len(lines),
                "paragraphs": len(filled),
                "paragraph_characters": sum(map(len, filled)),
                "cjk_characters": sum(len(CJK_CHAR.findall(line)) for line in filled),
            }
        )
    return described


def input_totals(inputs: list[dict], documents: int) -> dict:
    return {
        "documents": documents,
        **{
            key: sum(i[key] for i in inputs)
            for key in ("lines", "paragraphs", "paragraph_characters", "cjk_characters")
        },
    }


def shown_path(path: Path, root: Path) -> str:
    """`path` relative to the project when inside it, else as given (the record is committed)."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return os.path.relpath(path.resolve(), root.resolve())


def build(
    folder: Path,
    output: Path,
    record_path: Path,
    report_path: Path,
    root: Path,
    text_globs: Iterable[str],
    export_globs: Iterable[str],
) -> dict:
    stats = new_stats()
    documents = read_inputs(folder, stats)
    eval_texts = load_eval_texts(root, text_globs, export_globs)
    after = Totals()
    sha, size = write_jsonl_atomically(clean_corpus(documents, eval_texts, stats, after), output)
    inputs = describe_inputs(folder)
    record = {
        "command": REBUILD_COMMAND,
        "input_folder": shown_path(folder, root),
        "inputs": inputs,
        "excluded_project_texts": eval_texts.files,
        "output": {"path": shown_path(output, root), "sha256": sha, "bytes": size, **vars(after)},
        "before": input_totals(inputs, len(documents)),
        "settings": {"min_chars": MIN_CHARS, "min_cjk_share": MIN_CJK_SHARE, "overlap_chars": OVERLAP_CHARS},
        "line_rules": {name: stats[name].as_json() for name in LINE_RULES},
        "paragraph_rules": {name: stats[name].as_json() for name in PARAGRAPH_RULES},
        "per_source": per_source_counts(output),
    }
    write_text_atomically(record_path, json.dumps(record, ensure_ascii=False, indent=2) + "\n")
    write_text_atomically(report_path, render_report(record))
    return record


def per_source_counts(output: Path) -> dict[str, dict]:
    """Documents, paragraphs and characters kept per input (the clean folder's files counted together)."""
    counts: dict[str, Counter] = {}
    with open(output, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            counter = counts.setdefault(record["source"].split("/")[0], Counter())
            counter["documents"] += 1
            counter["paragraphs"] += record["text"].count("\n") + 1
            counter["characters"] += len(record["text"]) - record["text"].count("\n")
    return {source: dict(counter) for source, counter in sorted(counts.items())}


# --- the report ---------------------------------------------------------------------------------


def render_report(record: dict) -> str:
    before, out = record["before"], record["output"]
    lines = [
        "# Pretraining corpus: what the cleaning did",
        "",
        f"Written by `scripts/build_pretrain_corpus.py`; rebuild with `{record['command']}`. The cleaned text, "
        f"`{out['path']}`, is git-ignored; this file and `corpus.json` (the same figures, machine-readable) "
        'are committed. Each line of the JSONL is one document: `{"source", "doc", "line", "text"}`, '
        "paragraphs joined by `\\n`.",
        "",
        f"Inputs (`{record['input_folder']}`, see its SOURCES.md):",
        "",
        "| file | bytes | characters | sha256 |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| `{i['path']}` | {i['bytes']:,} | {i['characters']:,} | `{i['sha256']}` |" for i in record["inputs"]]
    lines += [
        "",
        f"Output: `{out['path']}`, {out['bytes']:,} bytes, sha256 `{out['sha256']}`.",
        "",
        "| | documents | paragraphs (non-empty lines) | characters | CJK characters |",
        "|---|---:|---:|---:|---:|",
        f"| before | {before['documents']:,} | {before['paragraphs']:,} | {before['paragraph_characters']:,} | "
        f"{before['cjk_characters']:,} |",
        f"| after | {out['documents']:,} | {out['paragraphs']:,} | {out['characters']:,} | {out['cjk_characters']:,} |",
        "",
        "Characters count the paragraphs' own characters (line breaks not counted). Kept per input:",
        "",
        "| input | documents | paragraphs | characters |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| `{s}` | {c['documents']:,} | {c['paragraphs']:,} | {c['characters']:,} |"
        for s, c in record["per_source"].items()
    ]
    lines += [
        "",
        "Project texts kept out (no paragraph of the corpus overlaps them): "
        + ", ".join(f"`{f}`" for f in record["excluded_project_texts"][:3])
        + (
            f" and {len(record['excluded_project_texts']) - 3} more"
            if len(record["excluded_project_texts"]) > 3
            else ""
        )
        + " (the full list is in corpus.json).",
        "",
    ]
    lines += rule_section("Line rules", "lines changed", "lines dropped", record["line_rules"])
    lines += rule_section("Paragraph rules", "", "paragraphs dropped", record["paragraph_rules"])
    return "\n".join(lines) + "\n"


def rule_section(title: str, changed: str, dropped: str, rules: dict) -> list[str]:
    lines = [
        f"## {title}",
        "",
        "Applied in this order; each line or paragraph counts under the first rule that drops it.",
        "",
        f"| rule | what | {changed + ' | ' if changed else ''}{dropped} | characters removed |",
        f"|---|---|{'---:|' if changed else ''}---:|---:|",
    ]
    for name, rule in rules.items():
        cells = [f"`{name}`", rule["description"]] + ([f"{rule['changed']:,}"] if changed else [])
        cells += [f"{rule['dropped']:,}", f"{rule['characters_removed']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for name, rule in rules.items():
        if not rule["examples"]:
            continue
        lines += [f"**`{name}`**, examples (input line, before → after):", ""]
        for example in rule["examples"]:
            after = "*(dropped)*" if example["after"] is None else f"`{markdown_code(example['after'])}`"
            lines.append(f"- `{example['source']}:{example['line']}` `{markdown_code(example['before'])}` → {after}")
        lines.append("")
    return lines


def visible(text: str) -> str:
    """An example as people can read it: invisible and non-ASCII space characters as Python escapes
    (`\\u00a0`, distinct from the literal `<U+00A0>` of the inputs), runs of one repeated escape
    shortened to `X×n`."""
    shown = "".join(f"\\u{ord(c):04x}" if INVISIBLE.match(c) or (c.isspace() and c != " ") else c for c in text)
    return REPEATED_ESCAPE.sub(lambda m: f"{m.group(1)}×{len(m.group(0)) // len(m.group(1))}", shown)


def markdown_code(text: str) -> str:
    """Text safe inside single backticks."""
    return text.replace("`", "'") or " "


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT, help=f"default {DEFAULT_INPUT}")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the JSONL corpus")
    parser.add_argument("--record", type=Path, help="default: corpus.json beside the output")
    parser.add_argument("--report", type=Path, help="default: CORPUS.md beside the output")
    parser.add_argument("--root", type=Path, default=ROOT, help="project folder the exclusion globs are in")
    parser.add_argument(
        "--exclude-texts",
        nargs="*",
        default=list(DEFAULT_EXCLUDE_TEXTS),
        help="globs of plain-text project documents to keep out",
    )
    parser.add_argument(
        "--exclude-exports",
        nargs="*",
        default=list(DEFAULT_EXCLUDE_EXPORTS),
        help="globs of Label Studio exports whose task texts to keep out",
    )
    args = parser.parse_args(argv)
    record_path = args.record or args.output.parent / "corpus.json"
    report_path = args.report or args.output.parent / "CORPUS.md"
    try:
        record = build(
            args.input, args.output, record_path, report_path, args.root, args.exclude_texts, args.exclude_exports
        )
    except CorpusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    out, before = record["output"], record["before"]
    print(
        f"wrote {args.output}: {out['documents']:,} documents, {out['paragraphs']:,} paragraphs, "
        f"{out['characters']:,} characters (from {before['paragraph_characters']:,} in {before['paragraphs']:,} "
        f"paragraphs); record {record_path}, report {report_path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
