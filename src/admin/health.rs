//! `GET /healthz`: healthy when a caller would hear a service, which takes
//! a playable schedule and, with a trunk, a registration (without one no
//! call reaches the line). A failing source alone is not unhealthy: callers
//! still hear the cached copy, and the status page says so. With the
//! self-test on, its last call to itself must have heard the service.

use serde::Serialize;

use super::snapshot::{LineSnapshot, TrunkState};

#[derive(Debug, Serialize, PartialEq)]
pub struct Health {
    pub ok: bool,
    pub checks: Vec<Check>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

pub fn check(line: &LineSnapshot) -> Health {
    let mut checks = vec![match &line.offer {
        Ok(offer) => Check {
            name: "schedule",
            ok: true,
            detail: format!("{} service(s) on the menu", offer.services),
        },
        Err(problem) => Check {
            name: "schedule",
            ok: false,
            detail: format!("callers hear the apology: {problem}"),
        },
    }];
    if let Some(trunk) = &line.trunk {
        let detail = match &trunk.state {
            TrunkState::Registered { until, .. } => {
                format!(
                    "registered with {} until {}",
                    trunk.registrar,
                    until.to_rfc3339()
                )
            }
            TrunkState::Resolving => format!("resolving {}", trunk.registrar),
            TrunkState::Registering { .. } => format!("registering with {}", trunk.registrar),
            TrunkState::Failing { reason, code, .. } => {
                format!("not registered with {}: {reason} ({code})", trunk.registrar)
            }
            TrunkState::Unregistering | TrunkState::Unregistered => {
                format!("unregistered from {}", trunk.registrar)
            }
        };
        checks.push(Check {
            name: "registration",
            ok: trunk.state.is_up(),
            detail,
        });
    }
    if let Some(test) = &line.self_test {
        checks.push(match &test.last {
            // Not yet run: nothing known to be wrong.
            None => Check {
                name: "self_test",
                ok: true,
                detail: "the line has not called itself yet".to_owned(),
            },
            Some(verdict) if test.is_overdue(line.now) => Check {
                name: "self_test",
                ok: false,
                detail: format!(
                    "the last self-test was at {}, though it runs every {}: it has stopped",
                    verdict.at.to_rfc3339(),
                    humantime::format_duration(test.interval)
                ),
            },
            Some(verdict) => Check {
                name: "self_test",
                ok: verdict.ok(),
                detail: format!("{}: {}", verdict.at.to_rfc3339(), verdict.detail()),
            },
        });
    }
    Health {
        ok: checks.iter().all(|c| c.ok),
        checks,
    }
}

impl Health {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Health of strings and bools serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::snapshot::tests::sample;

    #[test]
    fn healthy_with_a_menu_and_a_registration() {
        let health = check(&sample());
        assert!(health.ok);
        assert_eq!(health.checks.len(), 3);
        assert!(
            health
                .to_json()
                .starts_with(r#"{"ok":true,"checks":[{"name":"schedule","ok":true"#)
        );
    }

    #[test]
    fn each_failing_check_says_why() {
        let mut line = crate::admin::snapshot::tests::self_test_failed();
        line.offer = Err("no schedule has been fetched yet".to_owned());
        let trunk = line.trunk.as_mut().unwrap();
        trunk.state = TrunkState::Failing {
            since: line.now,
            reason: "no answer from the registrar".to_owned(),
            code: "trunk.timeout",
            retry_at: line.now,
        };
        let health = check(&line);
        assert!(!health.ok);
        assert!(health.checks.iter().all(|c| !c.ok));
        let json: serde_json::Value = serde_json::from_str(&health.to_json()).unwrap();
        assert_eq!(json["checks"][1]["name"], "registration");
        assert!(
            json["checks"][1]["detail"]
                .as_str()
                .unwrap()
                .contains("no answer from the registrar (trunk.timeout)")
        );
    }

    fn self_test_check(health: &Health) -> &Check {
        health
            .checks
            .iter()
            .find(|c| c.name == "self_test")
            .expect("a self_test check")
    }

    #[test]
    fn a_failed_self_test_is_unhealthy_and_one_not_yet_run_is_not() {
        let health = check(&crate::admin::snapshot::tests::self_test_failed());
        assert!(!health.ok);
        let test = self_test_check(&health);
        assert!(!test.ok);
        assert!(test.detail.contains("was not heard"), "{}", test.detail);
        let mut line = sample();
        line.self_test.as_mut().unwrap().last = None;
        assert!(check(&line).ok);
    }

    #[test]
    fn a_self_test_that_stopped_running_is_unhealthy() {
        let mut line = sample();
        // Every 15 min; the last passed 4 min before `now`: overdue after
        // 31 min.
        assert!(check(&line).ok);
        line.now += chrono::Duration::minutes(27);
        assert!(check(&line).ok, "two intervals and a minute are allowed");
        line.now += chrono::Duration::minutes(1);
        // Woken since, and found the line full: not stopped.
        let test = line.self_test.as_mut().unwrap();
        test.woke = Some(line.now - chrono::Duration::minutes(5));
        assert!(check(&line).ok);
        line.self_test.as_mut().unwrap().woke = None;
        let health = check(&line);
        assert!(!health.ok);
        let test = self_test_check(&health);
        assert!(
            test.detail.ends_with("runs every 15m: it has stopped"),
            "{}",
            test.detail
        );
    }

    #[test]
    fn without_a_trunk_only_the_schedule_counts() {
        let mut line = sample();
        line.trunk = None;
        line.self_test = None;
        let health = check(&line);
        assert!(health.ok);
        assert_eq!(health.checks.len(), 1);
    }
}
