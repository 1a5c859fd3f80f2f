"""scripts/build_pretrain_corpus.py on a small synthetic copy of ../shared/pretrain-corpus: each
cleaning rule, the files it writes, and its errors, checked on what it really writes."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "build_pretrain_corpus.py"

EVAL_SENTENCE = "对新引进的台资企业给予一次性落户奖励，最高不超过三百万元，分三年兑现到位。"
EXPORT_SENTENCE = "区人力资源和社会保障局负责组织实施高校毕业生就业见习补贴的申报和审核工作。"

LAWS = """---
bookCollapseSection: true
---
# 中华人民共和国示例法

2020年12月26日 第十三届全国人民代表大会常务委员会第二十四次会议通过

<!-- INFO END -->

## 第一章 总则

第一条 为了规范示例工作，保障当事人的合法权益，制定本法。

第二条 本法适用于中华人民共和国境内的示例活动。 [1]

<!-- TABLE -->
| 条文 |罪名 |
|-----|-----|
| 第一百三十三条之二 |妨害安全驾驶罪的认定标准 |
<!-- TABLE END -->

\u200b

详见[示例法释义](https://example.org/law)的全部说明与解释。

https://example.org/a/very/long/path/only/latin

第三条 国家鼓励和支持示例活动的研究与推广，依法保护示例成果。

第三条 国家鼓励和支持示例活动的研究与推广，依法保护示例成果。

第四条　省级人民政府应当加强对示例工作的统一领导。
---
bookCollapseSection: true
---
# 示例条例

第三条 国家鼓励和支持示例活动的研究与推广，依法保护示例成果。

{eval_quote}

第二条 本条例自公布之日起施行，由国务院有关部门负责解释。
""".replace("{eval_quote}", "根据上级精神，" + EVAL_SENTENCE[:36] + "，具体办法另行制定。")

WEB_REPORTS = """### 1990年政府工作报告
1990年国务院政府工作报告
中央政府门户网站\u3000www.gov.cn\u3000\u3000 2006年02月16日\u3000\u3000 来源：新华社
<U+00A0><U+00A0><U+00A0><U+00A0>国务院总理<U+00A0>李鹏同志在大会上作政府工作报告
——１９９０年３月２０日在第七届全国人民代表大会第三次会议上
<U+00A0><U+00A0><U+00A0><U+00A0>各位代表：一年来，我们坚决贯彻治理整顿和深化改革的方针，国民经济取得新的进展。
{export_sentence}
当前位置： 首页>> 中国概况>> 中国简况
1990年国务院政府工作报告   中央政府门户网站\u3000www.gov.cn\u3000\u3000 2006年02月16日\u3000\u3000 来源：新华社
### 2006年政府工作报告
<U+00A0><U+00A0><U+00A0><U+00A0>新华社北京2006年3月15日电
<U+00A0><U+00A0><U+00A0><U+00A0>2005年，我国社会主义现代化事业取得显著成就，这是截断的网页版本独有的一句。
<U+00A0><U+00A0><U+00A0><U+00A0>现在，我代表国务院，向大会作政府工作报告，请予审议，并请全国政协各位委员提出意见。
3月5日，第十届全国人民代表大会第四次会议在北京人民大会堂开幕。新华社记者 姚大伟 摄
""".replace("{export_sentence}", "相关工作安排如下：" + EXPORT_SENTENCE)

CLEAN_2006 = """2006年国务院政府工作报告
\u3000\u3000现在，我代表国务院，向大会作政府工作报告，请予审议，并请全国政协各位委员提出意见。
\u3000\u3000２００５年，国内生产总值达到１８．２３万亿元，比上年增长９．９％，国民经济平稳较快发展。
国务院总理?温家宝在报告中强调要坚持科学发展观统领经济社会发展全局。
"""


def load_script():
    spec = importlib.util.spec_from_file_location("build_pretrain_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


corpus = load_script()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def project(tmp_path) -> Path:
    """A project folder (data/raw text and an annotation export) and a synthetic input folder beside it."""
    root = tmp_path / "project"
    write(root / "data" / "raw" / "corpus" / "001_doc.txt", "南沙示例办法\n" + EVAL_SENTENCE + "\n")
    write(
        root / "annotations" / "export-v1.json",
        json.dumps(
            [{"data": {"text": "见习补贴\n" + EXPORT_SENTENCE, "doc_id": "x"}, "annotations": []}], ensure_ascii=False
        ),
    )
    inputs = tmp_path / "pretrain-corpus"
    write(inputs / "national_laws.txt", LAWS)
    write(inputs / "national_work_reports_1954_2018.txt", WEB_REPORTS)
    write(inputs / "national_work_reports_2003_2018" / "2006年国务院政府工作报告.txt", CLEAN_2006)
    return tmp_path


def build(base: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--input",
            str(base / "pretrain-corpus"),
            "--root",
            str(base / "project"),
            "--output",
            str(base / "project" / "data" / "pretrain" / "corpus.jsonl"),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def outputs(base: Path) -> tuple[list[dict], dict, str]:
    folder = base / "project" / "data" / "pretrain"
    records = [json.loads(line) for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    return (
        records,
        json.loads((folder / "corpus.json").read_text(encoding="utf-8")),
        (folder / "CORPUS.md").read_text(encoding="utf-8"),
    )


def paragraphs(records: list[dict]) -> list[str]:
    return [p for r in records for p in r["text"].split("\n")]


def test_cleaning_rules_on_synthetic_inputs(project):
    result = build(project)
    assert result.returncode == 0, result.stderr
    records, record, report = outputs(project)
    texts = paragraphs(records)
    joined = "\n".join(texts)

    # Documents, in reading order: the clean report first, then the web dump, then the laws.
    assert [(r["source"], r["doc"]) for r in records] == [
        ("national_work_reports_2003_2018/2006年国务院政府工作报告.txt", "2006年国务院政府工作报告"),
        ("national_work_reports_1954_2018.txt", "1990年政府工作报告"),
        ("national_laws.txt", "中华人民共和国示例法"),
        ("national_laws.txt", "示例条例"),
    ]

    # Markdown: front matter, markers, heading marks, table rules, links and footnotes gone; text kept.
    for leftover in ("---", "bookCollapseSection", "<!--", "INFO END", "#", "|", "](", "[1]", "\u200b"):
        assert leftover not in joined
    assert texts[texts.index("中华人民共和国示例法") + 1].startswith("2020年12月26日 第十三届")
    assert "第二条 本法适用于中华人民共和国境内的示例活动。" in texts
    assert "第一百三十三条之二 妨害安全驾驶罪的认定标准" in texts
    assert "详见示例法释义的全部说明与解释。" in texts
    # Escapes and whitespace: <U+00A0> is a real (then normalised) space; the GBK '?' is a space.
    assert "国务院总理 李鹏同志在大会上作政府工作报告" in texts
    assert "国务院总理 温家宝在报告中强调要坚持科学发展观统领经济社会发展全局。" in texts
    assert "第四条 省级人民政府应当加强对示例工作的统一领导。" in texts
    assert "U+00A0" not in joined and "\u00a0" not in joined and "\u3000" not in joined and "?" not in joined
    # Full-width digits become ASCII.
    assert "——1990年3月20日在第七届全国人民代表大会第三次会议上" in texts
    assert "2005年，国内生产总值达到18.23万亿元，比上年增长9.9％，国民经济平稳较快发展。" in texts
    # Boilerplate: page header/footer, breadcrumb, dateline, photo credit.
    for boilerplate in ("www.gov.cn", "当前位置", "新华社北京", "姚大伟"):
        assert boilerplate not in joined
    # Too short and mostly non-Chinese paragraphs.
    assert "第一章 总则" not in texts and not any("example.org" in t for t in texts)
    # Superseded: the 2006 web-dump report is replaced by the clean one, even its unique sentence.
    assert "这是截断的网页版本独有的一句" not in joined
    assert not any(r["doc"] == "2006年政府工作报告" for r in records)
    # Duplicates: within a document and across documents, the first kept.
    assert texts.count("第三条 国家鼓励和支持示例活动的研究与推广，依法保护示例成果。") == 1
    assert records[2]["text"].count("第三条 国家鼓励") == 1 and "第三条" not in records[3]["text"]
    assert texts.count("现在，我代表国务院，向大会作政府工作报告，请予审议，并请全国政协各位委员提出意见。") == 1
    # Evaluation texts: a paragraph quoting data/raw, and one containing an export's text, are out.
    assert EVAL_SENTENCE[:20] not in joined and EXPORT_SENTENCE[:20] not in joined
    assert "第二条 本条例自公布之日起施行，由国务院有关部门负责解释。" in texts

    rules = {**record["line_rules"], **record["paragraph_rules"]}
    assert rules["eval_overlap"]["dropped"] == 2
    assert rules["superseded"]["dropped"] == 2  # the unique sentence and the duplicated opening
    assert rules["duplicate"]["dropped"] == 2
    assert rules["boilerplate"]["dropped"] == 5
    assert rules["markdown"]["dropped"] >= 2 * 3 + 2 + 4  # front matter, web headings, markers, table rule
    assert rules["escapes"]["changed"] >= 4 and rules["fullwidth"]["changed"] == 2
    assert all(len(rule["examples"]) <= 5 for rule in rules.values())
    assert rules["superseded"]["examples"][0]["source"] == "national_work_reports_1954_2018.txt"

    output = project / "project" / "data" / "pretrain" / "corpus.jsonl"
    assert record["output"]["sha256"] == hashlib.sha256(output.read_bytes()).hexdigest()
    assert record["output"]["paragraphs"] == len(texts)
    assert record["output"]["characters"] == sum(map(len, texts))
    assert [i["path"] for i in record["inputs"]] == [
        "national_work_reports_2003_2018/2006年国务院政府工作报告.txt",
        "national_work_reports_1954_2018.txt",
        "national_laws.txt",
    ]
    assert record["excluded_project_texts"] == ["data/raw/corpus/001_doc.txt", "annotations/export-v1.json"]
    assert record["before"]["paragraphs"] > record["output"]["paragraphs"]
    assert "| `eval_overlap` |" in report and record["output"]["sha256"] in report and "make pretrain-corpus" in report


def test_rebuild_is_deterministic_and_leaves_no_temporary_files(project):
    assert build(project).returncode == 0
    first = outputs(project)[1]["output"]["sha256"]
    assert build(project).returncode == 0
    assert outputs(project)[1]["output"]["sha256"] == first
    assert sorted(p.name for p in (project / "project" / "data" / "pretrain").iterdir()) == [
        "CORPUS.md",
        "corpus.json",
        "corpus.jsonl",
    ]


def test_errors_name_the_file_and_line(project):
    laws = project / "pretrain-corpus" / "national_laws.txt"
    laws.write_bytes(b"# \xe6\xb3\x95\n\n\xff\xfe broken\n")
    result = build(project)
    assert result.returncode == 1
    assert f"{laws}:3: not UTF-8" in result.stderr
    assert not (project / "project" / "data" / "pretrain" / "corpus.jsonl").exists()

    write(laws, "正文先于标题出现的一行文字。\n# 标题\n")
    result = build(project)
    assert result.returncode == 1 and f"{laws}:1: text before the first '# title' heading" in result.stderr


def test_refuses_to_build_without_project_texts_to_check_against(project):
    result = build(project, "--exclude-texts", "nothing/*.txt", "--exclude-exports")
    assert result.returncode == 1 and "no project texts found" in result.stderr


def test_line_rules_one_by_one():
    assert corpus.fix_escapes("总理<U+00A0>李鹏&amp;同志?") == "总理\u00a0李鹏&同志 "
    assert corpus.strip_markdown("<!-- INFO END -->") is None
    assert corpus.strip_markdown("### 5.1　颅脑") == "5.1　颅脑"
    assert corpus.strip_markdown("|-----|-----|") is None
    assert (
        corpus.strip_markdown("《关于修改<中华人民共和国统计法>的决定》<br/>")
        == "《关于修改<中华人民共和国统计法>的决定》"
    )
    assert corpus.to_halfwidth("增长９．１％，ＧＤＰ") == "增长9.1％，GDP"
    assert (
        corpus.normalise_spaces("\u3000\u3000第四十三条\u00a0\u00a0工会经费\t的来源 ") == "第四十三条 工会经费 的来源"
    )
    assert corpus.cjk_share("收入合计27,203,319,000元。") == 1.0 and corpus.cjk_share("GB/T 2010 ab") == 0.0
