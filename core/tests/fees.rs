//! Party fees for every month since April 2011: the sourced vectors in `data/fees/`, and
//! statements across the 2026 change of regulation.

#![allow(clippy::unwrap_used)] // tests fail by panicking

use serde::Deserialize;
use thudo_core::handbook::fees::{
    FeeBasis, FeeError, FeePeriod, FeeRules, FeeSituation, Relief, WageRegion, YearMonth,
};

#[derive(Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    month: String,
    basis: FeeBasis,
    #[serde(default)]
    income_vnd: u64,
    #[serde(default)]
    set_amount_vnd: Option<u64>,
    #[serde(default)]
    past_working_age: bool,
    #[serde(default)]
    region: Option<WageRegion>,
    #[serde(default)]
    relief: Option<String>,
    #[serde(default)]
    regulation: Option<String>,
    #[serde(default)]
    due_vnd: Option<u64>,
    #[serde(default)]
    rule_confirmed: Option<bool>,
    #[serde(default)]
    error: Option<String>,
}

fn ym(s: &str) -> YearMonth {
    YearMonth::parse(s).unwrap()
}

fn relief(spec: &str) -> Relief {
    match spec.split(':').collect::<Vec<_>>()[..] {
        ["exempt"] => Relief::Exempt,
        ["reduction", percent, from, months] => Relief::Reduction {
            percent: percent.parse().unwrap(),
            from: ym(from),
            months: months.parse().unwrap(),
        },
        _ => panic!("bad relief {spec}"),
    }
}

#[test]
fn every_sourced_vector_holds() {
    let vectors: Vectors = serde_json::from_str(include_str!("data/fees/vectors.json")).unwrap();
    let rules = FeeRules::official().unwrap();
    let mut bases = std::collections::HashSet::new();
    for v in &vectors.vectors {
        let situation = FeeSituation {
            basis: v.basis,
            income_vnd: v.income_vnd,
            relief: v.relief.as_deref().map(relief),
            past_working_age: v.past_working_age,
            region: v.region,
            set_amount_vnd: v.set_amount_vnd,
        };
        let got = rules.assess(&situation, ym(&v.month));
        match (&v.error, got) {
            (Some(kind), Err(e)) => {
                let matches = match kind.as_str() {
                    "no_rule" => matches!(e, FeeError::NoRule { .. }),
                    "invalid" => matches!(e, FeeError::Invalid { .. }),
                    other => panic!("unknown error kind {other}"),
                };
                assert!(matches, "{}: expected {kind}, got {e}", v.name);
            }
            (None, Ok(a)) => {
                bases.insert((a.regulation.clone(), v.basis));
                assert_eq!(Some(a.due_vnd), v.due_vnd, "{}", v.name);
                assert_eq!(Some(&a.regulation), v.regulation.as_ref(), "{}", v.name);
                assert_eq!(a.basis, Some(v.basis), "{}", v.name);
                assert!(!a.rule.is_empty(), "{}: the rule is named", v.name);
                assert_eq!(
                    a.rule_confirmed,
                    v.rule_confirmed.unwrap_or(true),
                    "{}",
                    v.name
                );
            }
            (want, got) => panic!("{}: expected {want:?}, got {got:?}", v.name),
        }
    }
    // Every basis each regulation charges has a passing vector.
    for schedule in rules.schedules() {
        for line in &schedule.rules {
            assert!(
                bases.contains(&(schedule.regulation.clone(), line.basis)),
                "no vector for {:?} under {}",
                line.basis,
                schedule.regulation
            );
        }
    }
}

#[test]
fn a_minimum_wage_share_names_the_wage_and_its_decree() {
    let rules = FeeRules::official().unwrap();
    let situation = FeeSituation {
        region: Some(WageRegion::I),
        ..FeeSituation::new(FeeBasis::OtherIncome, 0)
    };
    let a = rules.assess(&situation, ym("2026-06")).unwrap();
    assert!(
        a.rule.contains("5310000 VND under 293/2025/NĐ-CP"),
        "{}",
        a.rule
    );
    // Before the earliest wage decree modelled there is no wage to take a share of; the
    // regulation that needs one starts later anyway.
    assert!(rules.minimum_wage(WageRegion::I, ym("2022-06")).is_none());
    assert_eq!(
        rules.minimum_wage(WageRegion::IV, ym("2024-07")),
        Some(("74/2024/NĐ-CP", 3_450_000))
    );
}

#[test]
fn arrears_cross_the_change_of_regulation_month_by_month() {
    let rules = FeeRules::official().unwrap();
    // A farmer in an inner district whose cell set 10,000 VND, who turns past working age in
    // March 2026.
    let farmer = FeeSituation {
        region: Some(WageRegion::I),
        set_amount_vnd: Some(10_000),
        ..FeeSituation::new(FeeBasis::OtherIncome, 0)
    };
    let periods = [
        FeePeriod {
            since: ym("2020-01"),
            situation: farmer.clone(),
        },
        FeePeriod {
            since: ym("2026-03"),
            situation: FeeSituation {
                past_working_age: true,
                ..farmer
            },
        },
    ];
    let s = rules
        .statement(&periods, ym("2025-11"), ym("2026-04"))
        .unwrap();
    let dues: Vec<(String, &str, u64)> = s
        .months
        .iter()
        .map(|a| (a.month.to_string(), a.regulation.as_str(), a.due_vnd))
        .collect();
    assert_eq!(
        dues,
        [
            ("2025-11".into(), "342-QĐ/TW", 10_000),
            ("2025-12".into(), "342-QĐ/TW", 10_000),
            ("2026-01".into(), "342-QĐ/TW", 10_000),
            ("2026-02".into(), "01-QĐ/TW", 15_930),
            ("2026-03".into(), "01-QĐ/TW", 10_620),
            ("2026-04".into(), "01-QĐ/TW", 10_620),
        ]
    );
    assert_eq!(s.total_due_vnd, 30_000 + 15_930 + 2 * 10_620);

    // A whole membership since 2011 is one statement.
    let pension = [FeePeriod {
        since: ym("2011-04"),
        situation: FeeSituation::new(FeeBasis::Pension, 4_000_000),
    }];
    let all = rules
        .statement(&pension, ym("2011-04"), ym("2030-12"))
        .unwrap();
    assert_eq!(all.months.len(), 237);
    assert_eq!(all.total_due_vnd, 237 * 20_000);
}

#[test]
fn statements_refuse_what_they_cannot_answer() {
    let rules = FeeRules::official().unwrap();
    let p = |since: &str| FeePeriod {
        since: ym(since),
        situation: FeeSituation::new(FeeBasis::Pension, 4_000_000),
    };
    let invalid = |r: Result<_, FeeError>| matches!(r, Err(FeeError::Invalid { .. }));
    assert!(invalid(rules.statement(
        &[p("2020-01")],
        ym("2021-01"),
        ym("2020-12")
    )));
    assert!(invalid(rules.statement(
        &[p("2020-01")],
        ym("2019-12"),
        ym("2020-02")
    )));
    assert!(invalid(rules.statement(
        &[p("2021-01"), p("2020-01")],
        ym("2021-01"),
        ym("2021-02")
    )));
    assert!(invalid(rules.statement(
        &[p("2020-01"), p("2020-01")],
        ym("2021-01"),
        ym("2021-02")
    )));
    assert!(invalid(rules.statement(
        &[p("1930-01")],
        ym("1930-01"),
        ym("2050-01")
    )));
    // Bad input is an error; a month no modelled rule prices is not (below).
    assert!(invalid(rules.statement(
        &[FeePeriod {
            since: ym("2020-01"),
            situation: FeeSituation::new(FeeBasis::SocialInsuranceSalary, 0),
        }],
        ym("2020-01"),
        ym("2020-02")
    )));
}

/// A month no modelled rule prices (before April 2011; sick or maternity leave under
/// 342-QĐ/TW) is named, and the rest of the member's history is still assessed.
#[test]
fn statements_name_the_months_no_rule_prices() {
    let rules = FeeRules::official().unwrap();
    let before = rules
        .statement(
            &[FeePeriod {
                since: ym("2010-01"),
                situation: FeeSituation::new(FeeBasis::Pension, 4_000_000),
            }],
            ym("2011-02"),
            ym("2011-05"),
        )
        .unwrap();
    let unpriced: Vec<String> = before
        .unpriced
        .iter()
        .map(|u| u.month.to_string())
        .collect();
    assert_eq!(unpriced, ["2011-02", "2011-03"]);
    assert!(before.unpriced[0].reason.contains("2011-04"));
    assert_eq!(before.months.len(), 2);
    assert_eq!(before.total_due_vnd, 2 * 20_000);
    assert!(!before.is_complete());

    // Maternity leave from December 2025 to March 2026, between two salaried runs.
    let salary = FeeSituation::new(FeeBasis::SocialInsuranceSalary, 9_000_000);
    let periods = [
        FeePeriod {
            since: ym("2025-01"),
            situation: salary.clone(),
        },
        FeePeriod {
            since: ym("2025-12"),
            situation: FeeSituation::new(FeeBasis::SickOrMaternityBenefit, 6_000_000),
        },
        FeePeriod {
            since: ym("2026-04"),
            situation: salary,
        },
    ];
    let s = rules
        .statement(&periods, ym("2025-11"), ym("2026-05"))
        .unwrap();
    let unpriced: Vec<String> = s.unpriced.iter().map(|u| u.month.to_string()).collect();
    assert_eq!(unpriced, ["2025-12", "2026-01"]);
    assert!(
        s.unpriced[0].reason.contains("342-QĐ/TW"),
        "{}",
        s.unpriced[0].reason
    );
    let dues: Vec<(String, u64)> = s
        .months
        .iter()
        .map(|a| (a.month.to_string(), a.due_vnd))
        .collect();
    // April is charged on March's basis, the benefit: a different basis, so April's own salary.
    assert_eq!(
        dues,
        [
            ("2025-11".into(), 90_000),
            ("2026-02".into(), 60_000),
            ("2026-03".into(), 60_000),
            ("2026-04".into(), 90_000),
            ("2026-05".into(), 90_000),
        ]
    );
    assert_eq!(s.total_due_vnd, 3 * 90_000 + 2 * 60_000);
    let whole = rules
        .statement(&periods, ym("2026-02"), ym("2026-05"))
        .unwrap();
    assert!(whole.is_complete());
}

#[test]
fn rules_as_data_are_checked_when_loaded() {
    let json = include_str!("../src/handbook/fees/regulations.json");
    assert!(FeeRules::from_json(json.as_bytes()).is_ok());
    let reversed = json.replacen(
        "\"min_vnd\": 2000, \"max_vnd\": 30000",
        "\"min_vnd\": 30000, \"max_vnd\": 2000",
        1,
    );
    assert!(matches!(
        FeeRules::from_json(reversed.as_bytes()),
        Err(FeeError::Invalid { .. })
    ));
    let zero_step = json.replacen("\"step_vnd\": 1", "\"step_vnd\": 0", 1);
    assert!(FeeRules::from_json(zero_step.as_bytes()).is_err());
    assert!(FeeRules::from_json(b"{\"schedules\": 5}").is_err());
    assert!(FeeRules::from_json(&json.as_bytes()[..json.len() / 2]).is_err());
}

/// Under 01-QĐ/TW a salary is charged the month after (1% of the previous month's
/// social-insurance salary); under 342-QĐ/TW, in its own month. A raise in July is charged
/// from August's fee; one in February 2026, the first month of 01-QĐ/TW, from March's.
#[test]
fn a_salary_is_charged_the_month_after_under_01_qd_tw() {
    let rules = FeeRules::official().unwrap();
    let salary = |since: &str, vnd: u64| FeePeriod {
        since: ym(since),
        situation: FeeSituation::new(FeeBasis::SocialInsuranceSalary, vnd),
    };
    let dues = |periods: &[FeePeriod], from: &str, to: &str| -> Vec<u64> {
        rules
            .statement(periods, ym(from), ym(to))
            .unwrap()
            .months
            .iter()
            .map(|a| a.due_vnd)
            .collect()
    };
    let raise = [salary("2026-03", 8_000_000), salary("2026-07", 10_000_000)];
    assert_eq!(
        dues(&raise, "2026-06", "2026-08"),
        [80_000, 80_000, 100_000]
    );
    // January 2026 was charged under 342-QĐ/TW on a public body's salary plus the allowances
    // subject to social insurance: the social-insurance salary February's fee takes. An
    // enterprise's January was its payroll wage, another figure: February takes its own.
    let at_the_change = [salary("2025-12", 6_000_000), salary("2026-02", 8_000_000)];
    assert_eq!(
        dues(&at_the_change, "2026-01", "2026-04"),
        [60_000, 60_000, 80_000, 80_000]
    );
    let wage = |since: &str, vnd: u64| FeePeriod {
        since: ym(since),
        situation: FeeSituation::new(FeeBasis::EnterpriseWage, vnd),
    };
    let enterprise_at_the_change = [wage("2025-12", 6_000_000), wage("2026-02", 8_000_000)];
    assert_eq!(
        dues(&enterprise_at_the_change, "2026-01", "2026-04"),
        [60_000, 80_000, 80_000, 80_000]
    );
    // A move from a public body to an enterprise (an equitised state firm) under 01-QĐ/TW:
    // both charge the previous month's social-insurance salary, so June's salary is charged
    // in July and July's wage from August, each once.
    let moved = [salary("2026-01", 8_000_000), wage("2026-07", 12_000_000)];
    assert_eq!(
        dues(&moved, "2026-06", "2026-08"),
        [80_000, 80_000, 120_000]
    );
    let raise_in_march = [salary("2026-01", 8_000_000), salary("2026-03", 9_000_000)];
    assert_eq!(
        dues(&raise_in_march, "2026-02", "2026-04"),
        [80_000, 80_000, 90_000]
    );
    // Exempt while on a salary given as 0 (an exemption needs no figure), then paying: the
    // first paying month takes its own salary, not the exempt months' 0.
    let exempt_then_paying = [
        FeePeriod {
            since: ym("2026-03"),
            situation: FeeSituation {
                relief: Some(Relief::Exempt),
                ..FeeSituation::new(FeeBasis::SocialInsuranceSalary, 0)
            },
        },
        salary("2026-07", 10_000_000),
    ];
    assert_eq!(
        dues(&exempt_then_paying, "2026-06", "2026-08"),
        [0, 100_000, 100_000]
    );
    // A member who starts on a salary (a pensioner hired again) pays on this month's salary
    // the first month: there is no salary of the month before.
    let hired = [
        FeePeriod {
            since: ym("2026-03"),
            situation: FeeSituation::new(FeeBasis::Pension, 6_000_000),
        },
        salary("2026-05", 10_000_000),
    ];
    assert_eq!(
        dues(&hired, "2026-04", "2026-06"),
        [30_000, 100_000, 100_000]
    );
}

/// An exempt member owes nothing, and needs no income, wage region or amount to say so.
#[test]
fn an_exempt_member_owes_nothing_without_the_figures_of_the_basis() {
    let rules = FeeRules::official().unwrap();
    let farmer = FeeSituation {
        relief: Some(Relief::Exempt),
        ..FeeSituation::new(FeeBasis::OtherIncome, 0)
    };
    for month in ["2025-06", "2026-06"] {
        let a = rules.assess(&farmer, ym(month)).unwrap();
        assert_eq!((a.due_vnd, a.relief_percent), (0, 100), "{month}");
    }
    // Without the exemption the same figures are missing: refused, as before.
    let plain = FeeSituation::new(FeeBasis::OtherIncome, 0);
    assert!(matches!(
        rules.assess(&plain, ym("2026-06")),
        Err(FeeError::Invalid { .. })
    ));
}

/// A member abroad paying the fixed amount 01-QĐ/TW allows, across the change: 342-QĐ/TW's
/// fixed amounts abroad are not modelled, so its months are unpriced, and the run goes on.
/// An exempt member owes nothing even in a month no rule prices (sick leave under 342-QĐ/TW).
#[test]
fn months_no_rule_prices_are_listed_and_an_exempt_member_owes_nothing_in_them() {
    let rules = FeeRules::official().unwrap();
    let abroad = FeePeriod {
        since: ym("2024-01"),
        situation: FeeSituation {
            set_amount_vnd: Some(100_000),
            ..FeeSituation::new(FeeBasis::Abroad, 0)
        },
    };
    let s = rules
        .statement(&[abroad], ym("2025-12"), ym("2026-03"))
        .unwrap();
    assert_eq!(
        s.unpriced.iter().map(|u| u.month).collect::<Vec<_>>(),
        [ym("2025-12"), ym("2026-01")]
    );
    assert_eq!(s.total_due_vnd, 200_000);
    let sick_and_exempt = FeePeriod {
        since: ym("2025-06"),
        situation: FeeSituation {
            relief: Some(Relief::Exempt),
            ..FeeSituation::new(FeeBasis::SickOrMaternityBenefit, 0)
        },
    };
    let s = rules
        .statement(&[sick_and_exempt], ym("2025-06"), ym("2025-06"))
        .unwrap();
    assert!(s.is_complete(), "{s:?}");
    assert_eq!((s.months.len(), s.total_due_vnd), (1, 0));
    // Not exempt, the same month is unpriced, as before.
    let sick = FeePeriod {
        since: ym("2025-06"),
        situation: FeeSituation::new(FeeBasis::SickOrMaternityBenefit, 3_000_000),
    };
    let s = rules
        .statement(&[sick], ym("2025-06"), ym("2025-06"))
        .unwrap();
    assert_eq!(s.unpriced.len(), 1);
}

/// The step and its direction are data (rounding is unconfirmed in the official text): down,
/// to the nearest (a half up) or up, each on the exact share (the fraction of a VND a 1%
/// share leaves counts), and again after a reduction.
#[test]
fn amounts_round_to_the_step_the_data_names() {
    let json = include_str!("../src/handbook/fees/regulations.json");
    let with = |step: u64, mode: &str| {
        let text = json.replace(
            "\"step_vnd\": 1,",
            &format!("\"step_vnd\": {step}, \"mode\": \"{mode}\","),
        );
        FeeRules::from_json(text.as_bytes()).unwrap()
    };
    let due = |rules: &FeeRules, salary: u64, reduction: u8| {
        let situation = FeeSituation {
            relief: (reduction > 0).then(|| Relief::Reduction {
                percent: reduction,
                from: ym("2026-03"),
                months: 12,
            }),
            ..FeeSituation::new(FeeBasis::SocialInsuranceSalary, salary)
        };
        let a = rules.assess(&situation, ym("2026-03")).unwrap();
        (a.base_vnd, a.due_vnd)
    };
    // 1% of 9,876,543 is 98,765.43 VND.
    assert_eq!(due(&with(1_000, "down"), 9_876_543, 0), (98_000, 98_000));
    assert_eq!(due(&with(1_000, "nearest"), 9_876_543, 0), (99_000, 99_000));
    assert_eq!(due(&with(1_000, "up"), 9_876_543, 0), (99_000, 99_000));
    // Just under half a step, and a half exactly.
    assert_eq!(due(&with(1_000, "nearest"), 9_849_999, 0).0, 98_000);
    assert_eq!(due(&with(1_000, "nearest"), 9_850_000, 0).0, 99_000);
    // To the VND, the fraction counts: 98,765.5 is 98,766 to the nearest, 98,765 down.
    assert_eq!(due(&with(1, "nearest"), 9_876_550, 0).0, 98_766);
    assert_eq!(due(&with(1, "down"), 9_876_550, 0).0, 98_765);
    assert_eq!(due(&with(1, "up"), 9_876_501, 0).0, 98_766);
    // A step's multiple stays as it is, whichever way.
    for mode in ["down", "nearest", "up"] {
        assert_eq!(due(&with(1_000, mode), 10_000_000, 0), (100_000, 100_000));
    }
    // A 30% reduction of 99,000 is 69,300: rounded again.
    assert_eq!(
        due(&with(1_000, "nearest"), 9_876_543, 30),
        (99_000, 69_000)
    );
    assert_eq!(due(&with(1_000, "up"), 9_876_543, 30), (99_000, 70_000));
    assert_eq!(due(&with(1_000, "down"), 9_876_543, 30), (98_000, 68_000));
    // The shipped data says nothing of the direction: down, as before.
    assert_eq!(
        due(FeeRules::official().unwrap(), 9_876_543, 0),
        (98_765, 98_765)
    );
    // A direction the library does not know is refused when loaded, not read as down.
    let unknown = json.replacen(
        "\"step_vnd\": 1,",
        "\"step_vnd\": 1, \"mode\": \"bankers\",",
        1,
    );
    assert!(FeeRules::from_json(unknown.as_bytes()).is_err());
}

/// A month's fee is never a guess: an income that means two things, a previous month nobody
/// gave, a wage decree nobody checked, a rounding nobody confirmed.
#[test]
fn fees_refuse_or_flag_what_the_rules_do_not_settle() {
    let rules = FeeRules::official().unwrap();
    let wage = |since: &str, vnd: u64| FeePeriod {
        since: ym(since),
        situation: FeeSituation::new(FeeBasis::EnterpriseWage, vnd),
    };
    // An enterprise's payroll wage (342-QĐ/TW) is not its social-insurance salary (01-QĐ/TW):
    // one period's figure is not charged as both.
    let err = rules
        .statement(&[wage("2025-06", 20_000_000)], ym("2026-01"), ym("2026-03"))
        .unwrap_err();
    assert!(matches!(err, FeeError::Invalid { .. }), "{err}");
    let split = [wage("2025-06", 20_000_000), wage("2026-02", 12_000_000)];
    let dues: Vec<u64> = rules
        .statement(&split, ym("2026-01"), ym("2026-03"))
        .unwrap()
        .months
        .iter()
        .map(|a| a.due_vnd)
        .collect();
    assert_eq!(dues, [200_000, 120_000, 120_000]);
    // A statement that reads it only as one kind (from March 2026 on) takes it as that; an
    // exempt period (which owes nothing) is not refused.
    let later = rules
        .statement(&[wage("2025-06", 20_000_000)], ym("2026-03"), ym("2026-04"))
        .unwrap();
    assert_eq!(later.total_due_vnd, 400_000);
    let exempt = FeePeriod {
        since: ym("2025-06"),
        situation: FeeSituation {
            relief: Some(Relief::Exempt),
            ..FeeSituation::new(FeeBasis::EnterpriseWage, 20_000_000)
        },
    };
    let owed = rules
        .statement(&[exempt], ym("2026-01"), ym("2026-03"))
        .unwrap();
    assert_eq!(owed.total_due_vnd, 0);
    // An enterprise's first month under 01-QĐ/TW needs no January: January's income was the
    // payroll wage, which February's fee does not take.
    let february = rules
        .statement(&[wage("2026-02", 12_000_000)], ym("2026-02"), ym("2026-02"))
        .unwrap();
    assert_eq!(february.months[0].due_vnd, 120_000);
    // Its January given as the payroll wage (342-QĐ/TW's figure), as the command line does with
    // one situation: February is charged on its own salary, unconfirmed, not refused.
    let one_situation = rules
        .statement(&[wage("2026-01", 12_000_000)], ym("2026-02"), ym("2026-03"))
        .unwrap();
    let (feb, mar) = (&one_situation.months[0], &one_situation.months[1]);
    assert_eq!((feb.due_vnd, mar.due_vnd), (120_000, 120_000));
    assert!(
        !feb.rule_confirmed && feb.rule.contains("not given"),
        "{}",
        feb.rule
    );
    assert!(mar.rule_confirmed);
    // 01-QĐ/TW charges the previous month's salary: a statement starting where the situations
    // start does not guess it from this month's.
    let salary = |since: &str, vnd: u64| FeePeriod {
        since: ym(since),
        situation: FeeSituation::new(FeeBasis::SocialInsuranceSalary, vnd),
    };
    let err = rules
        .statement(
            &[salary("2026-05", 10_000_000)],
            ym("2026-05"),
            ym("2026-05"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("2026-04"), "{err}");
    let given = [salary("2026-04", 8_000_000), salary("2026-05", 10_000_000)];
    let may = rules
        .statement(&given, ym("2026-05"), ym("2026-05"))
        .unwrap();
    assert_eq!(may.months[0].due_vnd, 80_000);
    // January 2026 for members with other incomes: which regulation applies is not settled.
    let farmer = FeeSituation {
        region: Some(WageRegion::I),
        set_amount_vnd: Some(10_000),
        ..FeeSituation::new(FeeBasis::OtherIncome, 0)
    };
    let january = rules.assess(&farmer, ym("2026-01")).unwrap();
    assert_eq!(january.due_vnd, 10_000);
    assert!(!january.rule_confirmed, "{}", january.rule);
    assert!(rules.assess(&farmer, ym("2025-12")).unwrap().rule_confirmed);
    assert!(rules.assess(&farmer, ym("2026-03")).unwrap().rule_confirmed);
    // A wage decree later than the data knows may change the share.
    let later = rules.assess(&farmer, ym("2035-07")).unwrap();
    assert_eq!(later.due_vnd, 26_550);
    assert!(!later.rule_confirmed && later.rule.contains("latest decree known"));
    // Rounding is unconfirmed: a share that needed it is not confirmed; a whole one is.
    let odd = rules
        .assess(
            &FeeSituation::new(FeeBasis::SocialInsuranceSalary, 9_876_543),
            ym("2026-03"),
        )
        .unwrap();
    assert_eq!(odd.due_vnd, 98_765);
    assert!(!odd.rule_confirmed);
    let even = rules
        .assess(
            &FeeSituation::new(FeeBasis::SocialInsuranceSalary, 9_876_500),
            ym("2026-03"),
        )
        .unwrap();
    assert!(even.rule_confirmed);
    // A reduction no regulation grants is refused even in a month no rule prices.
    let leave = FeeSituation {
        relief: Some(Relief::Reduction {
            percent: 40,
            from: ym("2025-05"),
            months: 3,
        }),
        ..FeeSituation::new(FeeBasis::SickOrMaternityBenefit, 6_000_000)
    };
    let period = [FeePeriod {
        since: ym("2025-05"),
        situation: leave,
    }];
    let err = rules
        .statement(&period, ym("2025-05"), ym("2025-07"))
        .unwrap_err();
    assert!(matches!(err, FeeError::Invalid { .. }), "{err}");
}

/// One month has one spelling, and the calendar ends at year 9999.
#[test]
fn months_are_spelled_one_way_and_stay_in_range() {
    for bad in [
        "2026-3", "+2026-03", "2026-003", " 2026-03", "2026/03", "10000-01", "1929-12",
    ] {
        assert!(YearMonth::parse(bad).is_err(), "{bad}");
    }
    let last = ym("9999-12");
    assert_eq!(last.plus(1), last);
    assert_eq!(last.plus(u32::MAX), last);
    assert_eq!(ym("2026-01").previous(), Some(ym("2025-12")));
    assert_eq!(ym("1930-01").previous(), None);
    assert_eq!((ym("2026-07").year(), ym("2026-07").month()), (2026, 7));
}
