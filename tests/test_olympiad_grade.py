"""Answer-level grading: each HiPhO answer type accepts what it should and rejects what it should.

The gold strings are written the way the real HiPhO files write them (\\boxed{$...$}, unbraced subscripts,
intervals, Chinese labels), because those are the traps a grader falls into.
"""

import threading

import pytest

from lyceum.errors import UserError
from lyceum.olympiad.grade import answer_kind, check_answer, choice_letters, numbers_close, parse_number
from lyceum.olympiad.timelimit import CheckTimeout, call_with_time_limit, time_limit

MC, NUM, EXPR, EQ = "Multiple Choice", "Numerical Value", "Expression", "Equation"


# --- multiple choice --------------------------------------------------------------------------------------

@pytest.mark.parametrize("pred", ["B", "(B)", r"\text{B}", r"\boxed{B}", r"$\mathrm{(B)}$", "选B", "Option B",
                                  "(B) 4 m/s", "b"])
def test_choice_accepts_the_letter_however_written(pred):
    assert check_answer(r"\boxed{B}", pred, MC)


@pytest.mark.parametrize("pred", ["C", "B, C", "(A)", "AB", "", "4 m/s"])
def test_choice_rejects_other_letters_and_extra_letters(pred):
    assert not check_answer(r"\boxed{B}", pred, MC)


def test_choice_letter_sets_must_match_exactly():
    gold = r"\boxed{A, D}"
    assert check_answer(gold, "A, D", MC)
    assert check_answer(gold, "D and A", MC)
    assert check_answer(gold, "(A)(D)", MC)
    assert check_answer(gold, "AD", MC)
    assert not check_answer(gold, "A", MC)
    assert not check_answer(gold, "A, C, D", MC)
    assert choice_letters("A, D") == frozenset("AD")


# --- numerical values -------------------------------------------------------------------------------------

@pytest.mark.parametrize("pred", ["1.35e3", r"1.35 \times 10^{3}", r"1.35\times10^3", "1350", "1351",
                                  r"S_0 = 1.35 \times 10^{3}", r"1.35 \cdot 10^{3} \mathrm{W/m^2}", "1.352 x 10^{3}"])
def test_numerical_accepts_notation_variants_within_tolerance(pred):
    assert check_answer(r"\boxed{$1.35 \times 10^{3}$}", pred, NUM)


@pytest.mark.parametrize("pred", ["1.40e3", "1.35e4", "135", r"-1.35 \times 10^{3}", "x", r"1.35 \times 10^{-3}"])
def test_numerical_rejects_wrong_values(pred):
    assert not check_answer(r"\boxed{$1.35 \times 10^{3}$}", pred, NUM)


def test_relative_tolerance_default_is_two_per_mille_and_configurable():
    assert check_answer(r"\boxed{286.8}", "287.3", NUM)  # 0.17 %
    assert not check_answer(r"\boxed{286.8}", "288", NUM)  # 0.42 %
    assert check_answer(r"\boxed{286.8}", "288", NUM, rtol=1e-2)
    assert not check_answer(r"\boxed{286.8}", "287.3", NUM, rtol=1e-4)


def test_numbers_are_compared_after_rounding_to_the_gold_precision():
    # the gold is given to one significant figure: 2.04e5 rounds to it, 2.6e5 does not
    assert check_answer(r"\boxed{$2 \times 10^{5} \mathrm{rad/s}$}", r"2.04 \times 10^{5}", NUM)
    assert not check_answer(r"\boxed{$2 \times 10^{5} \mathrm{rad/s}$}", r"2.6 \times 10^{5}", NUM)
    assert not check_answer(r"\boxed{21.9}", "22.1", NUM)
    assert numbers_close(80612, 80600, sig_figs=3)


def test_integer_golds_are_exact_not_one_significant_figure():
    assert not check_answer(r"\boxed{$\beta = 2$}", "2.2", NUM)  # an exponent from dimensional analysis
    assert check_answer(r"\boxed{$\beta = 2$}", "2.000", NUM)
    assert not check_answer(r"\boxed{300}", "310", NUM)


@pytest.mark.parametrize("pred", ["1.67", "1.64", "1.70", "[1.65, 1.69]", r"$\approx 1.66$"])
def test_interval_gold_accepts_values_inside(pred):
    assert check_answer(r"\boxed{$[1.64, 1.70]$}", pred, NUM)


@pytest.mark.parametrize("pred", ["1.60", "1.75", "[1.60, 1.69]", "-1.67"])
def test_interval_gold_rejects_values_outside(pred):
    assert not check_answer(r"\boxed{$[1.64, 1.70]$}", pred, NUM)


def test_interval_with_scientific_bounds_and_a_missing_bracket():
    gold = r"\boxed{$[1.7 \times 10^{16} \mathrm{s}, 2.1 \times 10^{16} \mathrm{s}$}"  # as in NBPhO_2025_8_6
    assert check_answer(gold, r"1.9 \times 10^{16} s", NUM)
    assert not check_answer(gold, r"2.5 \times 10^{16}", NUM)
    assert check_answer(r"\boxed{[10^{10.5}, 10^{11.5}]}", "1e11", NUM)
    assert not check_answer(r"\boxed{[10^{10.5}, 10^{11.5}]}", "1e12", NUM)


def test_lhs_equals_value_uses_the_right_hand_side():
    assert check_answer(r"\boxed{$\beta = 2$}", r"\beta = 2", NUM)
    assert check_answer(r"\boxed{$\beta = 2$}", "2", NUM)
    assert check_answer(r"\boxed{$T_E = 3.07 \times 10^2$}", r"T_{\mathrm{E}} \approx 307\,\mathrm{K}", NUM)
    assert not check_answer(r"\boxed{$\beta = 2$}", r"\beta = 3", NUM)


def test_numerical_gold_with_a_condition_in_prose():
    gold = r"\boxed{$\delta = 27.5^{\circ}$ when $\alpha = 20^{\circ}$}"  # APhO_2025_3_E_2
    assert check_answer(gold, r"27.5^\circ", NUM)
    assert check_answer(gold, r"\delta = 27.5", NUM)
    assert not check_answer(gold, "20", NUM)
    assert check_answer(r"\boxed{[6.32, 6.34] for $v_{r,1}$}", "6.33 km/s", NUM)


def test_percent_and_unicode_minus():
    assert check_answer(r"\boxed{0.35%}", r"0.35\%", NUM)
    assert check_answer(r"\boxed{0.35%}", "0.0035", NUM)
    assert check_answer(r"\boxed{0.35%}", "0.35", NUM)  # a bare 0.35 is read as 0.35 %
    assert not check_answer(r"\boxed{0.35%}", "35", NUM)
    assert check_answer(r"\boxed{$−1.3 \times 10^{−10}$}", "-1.3e-10", NUM)
    assert not check_answer(r"\boxed{$−1.3 \times 10^{−10}$}", "1.3e-10", NUM)


def test_closed_form_numbers_and_plus_minus():
    assert check_answer(r"\boxed{$\frac{4}{3}$}", "1.3333", NUM)
    assert check_answer(r"\boxed{2/3}", r"\frac{2}{3}", NUM)
    assert check_answer(r"\boxed{$\pi$}", "3.1416", NUM)
    assert check_answer(r"\boxed{$\pm 90$}", r"\pm 90^{\circ}", NUM)
    assert not check_answer(r"\boxed{$\pm 90$}", "90", NUM)


def test_units_are_ignored_by_default_and_converted_when_asked():
    gold = r"\boxed{21.9}"  # km
    assert check_answer(gold, "21.9 m", NUM)  # HiPhO ignores units
    assert not check_answer(gold, "21900 m", NUM)
    assert check_answer(gold, "21900 m", NUM, unit="km")
    assert check_answer(gold, "21.9", NUM, unit="km")  # no unit in the response: the bare number
    assert check_answer(r"\boxed{0.3}", r"300 \mathrm{nm}", NUM, unit=r"$\mathrm{\mu m}$")
    assert not check_answer(r"\boxed{0.3}", "300 m", NUM, unit=r"$\mathrm{\mu m}$")


def test_parse_number_reports_value_sig_figs_and_unit():
    n = parse_number(r"1.9 \times 10^{-9} m")
    assert n.value == pytest.approx(1.9e-9) and n.sig_figs == 2 and n.unit == "m"
    assert parse_number("[4.96, 4.97]").low == 4.96
    assert parse_number("slope") is None


# --- expressions ------------------------------------------------------------------------------------------

GOLD_V = r"\boxed{$v = \sqrt{\frac{e^2}{4 \pi \varepsilon_0 m_e r}}$}"  # IPhO_2025_1_A_1


@pytest.mark.parametrize("pred", [
    r"v=\sqrt{\frac{e^{2}}{4\pi\epsilon_{0}m_{e}r}}",
    r"\frac{e}{\sqrt{4\pi\varepsilon_0 m_e r}}",
    r"\sqrt{\frac{e^2}{4 \pi \varepsilon_0 r m_e}}",
    r"e (4 \pi \epsilon_0 m_e r)^{-1/2}",
    r"$v = \frac{e}{2\sqrt{\pi \varepsilon_0 m_e r}}$",
])
def test_expression_accepts_equivalent_forms(pred):
    assert check_answer(GOLD_V, pred, EXPR)


@pytest.mark.parametrize("pred", [
    r"\sqrt{\frac{e^2}{2 \pi \varepsilon_0 m_e r}}",
    r"\frac{e^2}{4 \pi \varepsilon_0 m_e r}",
    r"\sqrt{\frac{e^2}{4 \pi \varepsilon_0 m_p r}}",
    "v",
])
def test_expression_rejects_different_expressions(pred):
    assert not check_answer(GOLD_V, pred, EXPR)


def test_unbraced_subscripts_parse_like_braced_ones():
    gold = r"\boxed{$E_1 = -\frac{1}{2} \alpha^2 m_e c^2$}"  # IPhO_2025_1_A_3
    assert check_answer(gold, r"-\frac{\alpha^{2} m_{e} c^{2}}{2}", EXPR)
    assert check_answer(gold, r"-0.5 \alpha^2 m_e c^2", EXPR)
    assert not check_answer(gold, r"-\frac{1}{2} \alpha^2 m_e c", EXPR)


def test_symbol_case_matters():
    gold = r"\boxed{$\theta = \tan^{-1} \frac{2 \sqrt{Mm}}{M-m}$}"  # PanMechanics_2025_18_2
    assert check_answer(gold, r"\arctan\left(\frac{2\sqrt{M m}}{M - m}\right)", EXPR)
    assert not check_answer(gold, r"\arctan\left(\frac{2\sqrt{M m}}{m - M}\right)", EXPR)


def test_physics_names_are_not_sympy_constants():
    # I is a moment of inertia (not sqrt(-1)), gamma an exponent (not Euler's constant), d a distance
    assert check_answer(r"\boxed{$T = 2 \pi \sqrt{\frac{I}{M g d}}$}", r"2\pi\sqrt{I/(M d g)}", EXPR)
    assert not check_answer(r"\boxed{$T = 2 \pi \sqrt{\frac{I}{M g d}}$}", r"2\pi\sqrt{I_0/(M d g)}", EXPR)
    assert check_answer(r"\boxed{$h_{1} = r^2 \rho^{\gamma-2}$}", r"\frac{r^2 \rho^{\gamma}}{\rho^2}", EXPR)
    assert not check_answer(r"\boxed{$h_{1} = r^2 \rho^{\gamma-2}$}", r"r^2 \rho^{\Gamma-2}", EXPR)


def test_primes_and_stars_are_part_of_a_name():
    assert not check_answer(r"\boxed{$T'$}", "T", EXPR)
    assert check_answer(r"\boxed{$\sqrt{\frac{2 G (M_{1}^{\prime} + M_{2})}{a}}$}",
                        r"\sqrt{2G(M_1' + M_2)/a}", EXPR)


def test_boxed_dollar_wrapping_and_left_right_are_normalised():
    gold = r"$\boxed{$p(z) = p_0 \exp\left(-\frac{\mu_{\text{air}}}{RT} gz\right)$}"
    assert check_answer(gold, r"p_0 e^{-\mu_{air} g z/(R T)}", EXPR)
    assert not check_answer(gold, r"p_0 e^{\mu_{air} g z/(R T)}", EXPR)


def test_expression_with_chinese_label_and_parenthetical():
    gold = r"\boxed{当自转和公转方向相同时：$\dot{R}_a = \tfrac{3\alpha\lambda}{c r_a}$}"
    assert check_answer(gold, r"\dot{R}_a = \frac{3 \alpha \lambda}{c r_a}", EXPR)
    assert not check_answer(gold, r"-\frac{3 \alpha \lambda}{c r_a}", EXPR)
    gold = r"\boxed{$x(t) = A_1 \cos(\omega t + \phi_1)$（$A_1, \phi_1$ 由初始条件确定）}"
    assert check_answer(gold, r"A_1\cos(\phi_1 + \omega t)", EXPR)


def test_expression_alternatives_and_chains():
    gold = r"\boxed{$T_{\mathrm{E}} = (\frac{S_0}{4 \sigma})^{1/4} = \sqrt{\frac{R_S}{2d}} T_S$}"  # IPhO_2024_1_A_2
    assert check_answer(gold, r"\left(\frac{S_0}{4\sigma}\right)^{1/4}", EXPR)
    assert check_answer(gold, r"T_S\sqrt{R_S/(2d)}", EXPR)
    gold = r"\boxed{$v_{c,m} \simeq \sqrt{4 \pi C_{m} G}$ if $r \gg r_m$}"
    assert check_answer(gold, r"2\sqrt{\pi C_m G}", EXPR)


def test_time_derivative_notations_are_the_same_symbol():
    gold = r"\boxed{$\frac{d^2 z}{d t^2} = -\omega^2 z$}"
    assert check_answer(gold, r"\ddot{z} = -\omega^2 z", EQ)


def test_decimal_coefficients_use_the_numeric_tolerance():
    assert check_answer(r"\boxed{$0.42 R$}", "0.4205 R", EXPR)
    assert not check_answer(r"\boxed{$0.42 R$}", "0.45 R", EXPR)


def test_vector_answers_compare_componentwise():
    gold = r"\boxed{$(\frac{m_1 - m_2}{2(m_1 + m_2)} R, \frac{\sqrt{3}}{2} R, 0)$}"  # CPhO_2025_4_2
    assert check_answer(gold, r"\left(\frac{(m_1-m_2)R}{2(m_1+m_2)}, \frac{\sqrt 3 R}{2}, 0\right)", EXPR)
    assert not check_answer(gold, r"\left(\frac{(m_1-m_2)R}{2(m_1+m_2)}, -\frac{\sqrt 3 R}{2}, 0\right)", EXPR)


# --- equations --------------------------------------------------------------------------------------------

GOLD_EQ = r"\boxed{$m_N \ddot{x}_1 = -k_N (x_1 - x_2) + m_N g$}"  # PanMechanics_2024_18_3


@pytest.mark.parametrize("pred", [
    r"m_N \ddot{x}_1 + k_N (x_1 - x_2) - m_N g = 0",
    r"-k_N(x_1-x_2) + m_N g = m_N\ddot{x}_1",
    r"2 m_N \ddot{x}_1 = -2 k_N (x_1 - x_2) + 2 m_N g",
    r"\ddot{x}_1 = g - \frac{k_N}{m_N}(x_1 - x_2)",
    r"m_N \frac{d^2 x_1}{dt^2} = k_N (x_2 - x_1) + m_N g",
])
def test_equation_accepts_the_same_equation_up_to_a_factor(pred):
    assert check_answer(GOLD_EQ, pred, EQ)


@pytest.mark.parametrize("pred", [
    r"m_N \ddot{x}_1 = -k_N (x_1 - x_2) - m_N g",
    r"m_N \ddot{x}_1 = -k_N (x_1 + x_2) + m_N g",
    r"m_N \ddot{x}_1 + k_N (x_1 - x_2)",
    r"0 = 0",
])
def test_equation_rejects_different_equations(pred):
    assert not check_answer(GOLD_EQ, pred, EQ)


# --- judge-only types, errors, time limits -----------------------------------------------------------------

def test_inequality_and_open_ended_are_left_to_the_judge():
    assert not check_answer(r"\boxed{$\Omega > \sqrt{2} \frac{k}{a}$}", r"\Omega > \sqrt{2} k/a", "Inequality")
    assert not check_answer(r"\boxed{石质小行星受到影响更大}", "石质小行星受到影响更大", "Open-Ended")
    assert answer_kind("Open-Ended") == "open"


def test_unknown_answer_type_is_a_user_error():
    with pytest.raises(UserError, match="unknown answer type 'Essay'"):
        check_answer("1", "1", "Essay")


def test_empty_prediction_is_wrong():
    assert not check_answer(r"\boxed{1}", "", NUM)
    assert not check_answer(r"\boxed{x}", "   ", EXPR)


def _spin():
    while True:
        pass


def test_time_limit_interrupts_a_runaway_check_in_the_main_thread():
    assert call_with_time_limit(_spin, seconds=0.2, default="gave up") == "gave up"
    with pytest.raises(CheckTimeout), time_limit(0.1):
        _spin()


def test_time_limit_works_off_the_main_thread():
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("v", call_with_time_limit(_spin, seconds=0.3, default=False)))
    t.start()
    t.join(10)
    assert out == {"v": False}
    t = threading.Thread(target=lambda: out.update(w=check_answer(GOLD_V, r"\frac{e}{\sqrt{4\pi\varepsilon_0 m_e r}}",
                                                                      EXPR)))
    t.start()
    t.join(30)
    assert out["w"] is True


# --- how models actually write answers ---------------------------------------------------------------------

def test_a_chain_of_equal_values_may_end_in_another_unit_or_a_number():
    assert check_answer(r"\boxed{-13.6}", r"E_1 = -13.6\ \mathrm{eV} = -2.18\times 10^{-18}\ \mathrm{J}", NUM)
    assert check_answer(r"\boxed{$v_1 = \alpha c$}", r"v_1 = \alpha c \approx 2.19 \times 10^{6}\,\text{m/s}", EXPR)
    assert not check_answer(r"\boxed{$5.31 \times 10^{-11}$}", r"r_1 = \frac{\hbar}{\alpha m_e c} \approx 5.29\times10^{-11}",
                            NUM)  # 0.4 % off


def test_siunitx_thousands_separators_and_unbraced_accents():
    assert check_answer(r"\boxed{$1.35 \times 10^{3}$}", r"\SI{1.35e3}{W/m^2}", NUM)
    assert check_answer(r"\boxed{80600}", r"80\,600 \text{ years}", NUM)
    assert check_answer(r"\boxed{$\ddot{q} = p a \Omega^{2} \cos \Omega t$}", r"\ddot q = a p \Omega^2 \cos(\Omega t)", EQ)
    assert check_answer(r"\boxed{E}", r"The answer is \textbf{(E)}.", MC)


# --- forms that were rejected (issue 10) and more of the kind ---------------------------------------------

@pytest.mark.parametrize("gold, pred, kind", [
    (r"\boxed{$\dot{\phi} = \frac{g}{R}$}", r"\dot\phi = \frac{g}{R}", EQ),  # unbraced accent before a command
    (r"\boxed{$\ddot{\phi} = -\frac{g}{l}\phi$}", r"\ddot\phi = -\frac{g}{l}\phi", EQ),
    (r"\boxed{$\dot{\eta}_0 = \frac{v}{R}$}", r"\dot\eta_0 = \frac{v}{R}", EQ),
    (r"\boxed{80600}", r"80{,}600", NUM),  # LaTeX's thousands separator
    (r"\boxed{80600}", r"80,600 \text{ yr}", NUM),
    (r"\boxed{$\frac{2}{3}$}", r"\frac{2}{3}\ \mathrm{kg}", NUM),  # a fraction followed by a unit
    (r"\boxed{$\sqrt{2}$}", r"\sqrt{2}\,\text{m/s}", NUM),
    (r"\boxed{$v_0 \exp(-\pi \mu)$}", r"v_0 e^{-\pi \mu}", EXPR),
    (r"\boxed{$\frac{R_\odot v_\odot \sin\ell}{v_\odot\sin\ell + v_{rE/S}}$}",
     r"\frac{R_\odot}{1 + \frac{v_{rE/S}}{v_\odot \sin\ell}}", EXPR),  # a nested fraction rewritten
])
def test_forms_models_write_that_were_rejected(gold, pred, kind):
    assert check_answer(gold, pred, kind)


@pytest.mark.parametrize("pred", [
    "2.895e+06", "2.895E6", "2.9e6", r"2.895 \times 10^{6}", r"2.895\times10^6", r"2.895 \cdot 10^{6}",
    r"2.895 \times 10^{6}\,\mathrm{m\,s^{-1}}", r"\approx 2.9 \times 10^{6}\ \text{m/s}", r"2895000",
    r"(2.895 \pm 0.004) \times 10^{6}\ \mathrm{m/s}", r"v \approx 2.90\times 10^{6}",
    r"\dfrac{5.79 \times 10^{6}}{2}",
])
def test_scientific_notation_in_every_style_with_units(pred):
    assert check_answer(r"\boxed{$2.9 \times 10^{6}$}", pred, NUM)


@pytest.mark.parametrize("pred", [
    "2.895e+05", r"2.895 \times 10^{7}", r"-2.9 \times 10^{6}", "3.1e6", r"2.9 \times 10^{-6}", r"29 \times 10^{6}",
])
def test_scientific_notation_never_accepts_a_wrong_value(pred):
    assert not check_answer(r"\boxed{$2.9 \times 10^{6}$}", pred, NUM)


def test_intervals_written_with_powers_of_ten():
    gold = r"\boxed{$[1.0\times10^{-3}, 1.2\times 10^{-3}]$}"
    assert check_answer(gold, "1.1e-3", NUM)
    assert check_answer(gold, r"1.15 \times 10^{-3}\ \mathrm{s}", NUM)
    assert not check_answer(gold, "1.3e-3", NUM)
    assert not check_answer(gold, r"1.1 \times 10^{-2}", NUM)


def test_the_official_rounding_defect_is_not_ours():
    # HiPhO's rules accept 13 for a gold of 10 and -1.3 for -1 (both rounded to 0 decimals... of 1 figure)
    assert not check_answer(r"\boxed{10}", "13", NUM)
    assert not check_answer(r"\boxed{-1}", "-1.3", NUM)


# --- load-independent verdicts ------------------------------------------------------------------------------

def test_a_budget_that_runs_out_is_undecided_not_wrong(monkeypatch):
    from lyceum.olympiad import grade

    calls = []

    def slow(g, p):
        calls.append(1)
        _spin()

    monkeypatch.setattr(grade, "_symbolic_equal", slow)
    monkeypatch.setattr(grade, "_math_verify_equal", lambda g, p: False)
    monkeypatch.setattr(grade, "_numeric_verdict", lambda *a, **k: None)
    verdict = grade.answer_verdict(r"\boxed{$a b$}", r"b a + 0", EXPR, timeout=0.05)
    assert verdict == grade.UNDECIDED and len(calls) == 2  # retried once, with a larger budget
    assert not check_answer(r"\boxed{$a b$}", r"b a + 0", EXPR, timeout=0.05)


def test_a_finished_no_is_not_retried(monkeypatch):
    from lyceum.olympiad import grade

    assert grade.answer_verdict(r"\boxed{$x^2 + 1$}", "x^2 + 2", EXPR) is False


def test_the_budget_is_cpu_time_not_wall_time():
    import time

    # sleeping spends no CPU: a 0.1 s budget does not cut a 0.3 s sleep short
    assert call_with_time_limit(lambda: (time.sleep(0.3), "done")[1], seconds=0.1, default="cut") == "done"


def test_a_timeout_during_parsing_is_not_cached_as_unparseable():
    from lyceum.olympiad.latex import parse_latex

    text = r"\frac{a_{q} + 1}{b_{q}}"
    with pytest.raises(CheckTimeout), time_limit(1e-6):
        parse_latex(text)
        _spin()
    assert parse_latex(text) is not None


@pytest.mark.parametrize("gold, pred, kind", [
    (r"\boxed{$1.5\times10^{-3}$}", "1.5 × 10⁻³ m", NUM),  # unicode superscripts
    (r"\boxed{4.4}", "about 4.4 m/s", NUM),
    (r"\boxed{$1.5\times10^{3}$}", r"1.5\text{e}3", NUM),
    (r"\boxed{$1.2\times 10^{5}$}", r"1.2\times 10^{5}\ \text{Pa} = 1.2\ \text{bar}", NUM),  # value first, then another unit
    (r"\boxed{$\sqrt{\frac{2h}{g}}$}", r"t = \sqrt{\dfrac{2h}{g}}\ \text{s}", EXPR),  # a unit after an expression
])
def test_more_ways_models_write_final_answers(gold, pred, kind):
    assert check_answer(gold, pred, kind)


def test_a_text_unit_is_dropped_only_after_a_space_never_a_subscript():
    assert check_answer(r"\boxed{$\frac{A S_{\mathrm{c}}}{2}$}", r"\frac{A S_{\mathrm{c}}}{2}", EXPR)
    assert not check_answer(r"\boxed{$2 m$}", r"2\ \mathrm{m}", EXPR)  # m the mass is not m the metre
