"""The HiPhO loader, answer extraction and medals, on small files written here and on the real data."""

import json

import pytest

from lyceum.errors import UserError
from lyceum.olympiad.data import criterion_points, load_exam, load_hipho, load_medals
from lyceum.olympiad.extract import boxed_contents, extract_answers, strip_boxed
from lyceum.olympiad.medals import medal


def write_exam(path, records, information="Constants: g = 9.8 m/s^2"):
    path.write_text(json.dumps([{"information": information}, *records], ensure_ascii=False), encoding="utf-8")
    return path


def record(**kw):
    base = {"id": "X_1", "context": "", "question": "q", "answer": [r"\boxed{1}"], "answer_type": ["Numerical Value"],
            "unit": [None], "points": [1.0], "modality": "text-only", "field": "Mechanics", "source": "X",
            "image_question": []}
    base.update(kw)
    return base


# --- loader -----------------------------------------------------------------------------------------------

def test_information_element_is_the_data_sheet_of_every_problem(tmp_path):
    exam = load_exam(write_exam(tmp_path / "X.json", [record(), record(id="X_2")]))
    assert exam.name == "X" and len(exam.problems) == 2
    assert exam.problems[1].information == "Constants: g = 9.8 m/s^2"
    assert exam.full_mark == 2.0


def test_short_unit_lists_are_padded(tmp_path):
    rec = record(answer=["\\boxed{1}", "\\boxed{2}"], answer_type=["Numerical Value"] * 2, unit=["m"], points=[1, 2])
    p = load_exam(write_exam(tmp_path / "X.json", [rec])).problems[0]
    assert p.units == ["m", None]


def test_marking_missing_empty_flat_or_several_schemes(tmp_path):
    recs = [record(id="a"), record(id="b", marking=[]), record(id="c", marking=["Award 1 pt if x."]),
            record(id="d", marking=[["Award 1 pt if x."], ["Award 0.5 pt if y.", "Award 0.5 pt if z."]])]
    exam = load_exam(write_exam(tmp_path / "X.json", recs))
    assert [p.marking for p in exam.problems] == [
        [], [], [["Award 1 pt if x."]], [["Award 1 pt if x."], ["Award 0.5 pt if y.", "Award 0.5 pt if z."]]]


def test_chinese_text_and_images_load(tmp_path):
    (tmp_path / "image_question").mkdir()
    (tmp_path / "image_question" / "X_1_1.png").write_bytes(b"\x89PNG\r\n")
    rec = record(question="求电场强度", image_question=["image_question/X_1_1.png"])
    p = load_exam(write_exam(tmp_path / "X.json", [rec], information="对于多元函数")).problems[0]
    assert p.question == "求电场强度" and p.information == "对于多元函数"
    assert p.images == [tmp_path / "image_question" / "X_1_1.png"]


@pytest.mark.parametrize("content, message", [
    ("[{\"information\": 1}, {\"id\": ", "is not valid JSON"),
    ("{\"id\": 1}", "must hold a JSON list"),
    (json.dumps([record(points=[1, 2])]), "has 1 answers, 1 answer types and 2 points"),
    (json.dumps([{"id": "x"}]), "record is missing question, answer, answer_type, points"),
    (json.dumps([record(image_question=["image_question/nope.png"])]), "image image_question/nope.png"),
])
def test_malformed_exam_files_are_user_errors(tmp_path, content, message):
    path = tmp_path / "X.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_exam(path)


def test_missing_directory_and_unknown_exam_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="HiPhO data directory not found"):
        load_hipho(tmp_path / "nope")
    write_exam(tmp_path / "X.json", [record()])
    with pytest.raises(UserError, match="unknown exam 'Y'"):
        load_hipho(tmp_path, "Y")


def test_criterion_points_in_english_and_chinese():
    assert criterion_points("Award 0.4 pt if the answer ... Partial points: award 0.1 pt if ...") == 0.4
    assert criterion_points("Award 3.0 pts if the answer correctly identifies ...") == 3.0
    assert criterion_points("如果解答正确写出 ... 则得 2 分。否则得 0 分。") == 2.0
    assert criterion_points("Check the sign.") is None


# --- extraction -------------------------------------------------------------------------------------------

def test_last_n_boxes_in_order_with_nested_braces():
    response = r"First \boxed{x} then \boxed{\frac{a}{b^{2}}} and finally \boxed{\sqrt{\frac{1}{2}}}."
    assert extract_answers(response, 2) == [r"\frac{a}{b^{2}}", r"\sqrt{\frac{1}{2}}"]
    assert boxed_contents(r"\boxed{\boxed{1}} \fbox{2}") == [r"\boxed{1}", "2"]


def test_fewer_boxes_than_answers_pads_the_missing_last_ones():
    assert extract_answers(r"\boxed{1}", 3) == ["1", "", ""]
    assert extract_answers("no answer at all", 2) == ["", ""]


def test_unclosed_box_runs_to_the_end_of_its_line():
    response = "\\boxed{$\\omega^2 = \\omega_{pe}^2$\n\\boxed{$v_g = 1$}"  # as in CPhO_2025_7_6's gold
    assert extract_answers(response, 2) == ["$\\omega^2 = \\omega_{pe}^2$", "$v_g = 1$"]


def test_answer_block_is_used_when_there_is_no_box():
    assert extract_answers("reasoning...\n<answer>\n3.2 m/s\n</answer>", 1) == ["3.2 m/s"]
    assert extract_answers("<answer>\nA\nC\n</answer>", 2) == ["A", "C"]
    assert extract_answers(r"<answer>so \boxed{7}</answer>", 1) == ["7"]


def test_strip_boxed_unwraps_the_dollar_box_trap():
    assert strip_boxed(r"\boxed{$v = 2$}") == "$v = 2$"
    assert strip_boxed(r"$\boxed{$[5.21, 5.28]$}") == "$[5.21, 5.28]$"


# --- medals -----------------------------------------------------------------------------------------------

def test_medal_thresholds_are_inclusive_and_cpho_has_none(hipho_dir):
    cut = load_medals(hipho_dir)
    ipho = cut["IPhO_2025"]  # bronze 7.2, silver 12.1, gold 19.7
    assert [medal(s, ipho) for s in (7.1, 7.2, 12.1, 19.69, 19.7, 29.4)] == [
        "none", "bronze", "silver", "silver", "gold", "gold"]
    assert "CPhO_2025" not in cut and medal(300.0, cut.get("CPhO_2025")) is None


# --- the real data ----------------------------------------------------------------------------------------

def test_all_fourteen_exams_load_with_their_full_marks(hipho_dir):
    exams = load_hipho(hipho_dir)
    assert len(exams) == 14 and sum(len(e.problems) for e in exams.values()) == 403
    cut = load_medals(hipho_dir)
    for name, c in cut.items():  # the model full mark of medals.json is the sum of the points
        assert exams[name].full_mark == pytest.approx(c.model_full)
    assert exams["CPhO_2025"].full_mark == pytest.approx(320)
