//! Arbitrary methods, paths, bodies and query strings never panic the router: each gets a route
//! or an error with a status from the documented set.

use analysis_api::router::{body, page, paging, route};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn routing_never_panics(method in "[A-Za-z]{0,8}", path in "(/[a-z{}.%]{0,12}){0,5}/?") {
        if let Err(e) = route(&method, &path) {
            prop_assert!([404, 405].contains(&e.status), "{e:?}");
            let json: serde_json::Value = serde_json::from_str(&e.body()).expect("error body is JSON");
            prop_assert!(json["error"]["code"].is_string() && json["error"]["message"].is_string());
        }
    }

    #[test]
    fn bodies_never_panic(raw in proptest::option::of(".{0,300}"), b64 in any::<bool>()) {
        if let Err(e) = body(raw.as_deref(), b64) {
            prop_assert!([400, 413].contains(&e.status), "{e:?}");
        }
    }

    #[test]
    fn json_shaped_bodies_never_panic(v in any::<i64>(), s in "\\PC{0,40}", nested in 0usize..6) {
        let mut json = serde_json::json!({"lookback_days": v, "strategy": s});
        for _ in 0..nested {
            json = serde_json::json!({"x": json});
        }
        let _ = body(Some(&json.to_string()), false);
    }

    #[test]
    fn paging_never_panics(limit in ".{0,6}", offset in ".{0,6}", n in 0usize..50) {
        if let Ok((l, o)) = paging(&[("limit".into(), limit), ("offset".into(), offset)]) {
            let mut r = serde_json::json!({"functions": (0..n).collect::<Vec<_>>()});
            page(&mut r, "functions", l, o);
            prop_assert!(r["functions"].as_array().map_or(0, Vec::len) <= l);
        }
    }
}
