//! Arbitrary filters, search text, sort and limits -> the built SQL always
//! carries the org predicate bound as $1 to the tenant's org, every
//! placeholder has a parameter, and no caller-supplied text is ever
//! interpolated into it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantry_reference::tenant::OrgId;
use tenantry_reference::tenant_db::{FuzzInput, Value};

fuzz_target!(|input: FuzzInput| {
    let Some(org) = OrgId::new(input.org.clone()) else {
        return;
    };
    let Ok((sql, params)) = input.query().build(&org, true) else {
        return;
    };
    assert_eq!(params.first(), Some(&Value::Text(org.as_str().to_string())));
    let scoped = sql.contains("organization_id = $1")
        || (sql.starts_with("INSERT INTO app.projects (organization_id") && sql.contains("VALUES ($1"));
    assert!(scoped, "{sql}");
    // Every caller value carries a marker byte no SQL template contains.
    assert!(!sql.contains('\u{1}'), "caller text interpolated: {sql}");
    // Every placeholder names a bound parameter.
    for n in sql
        .split('$')
        .skip(1)
        .map(|s| s.chars().take_while(char::is_ascii_digit).collect::<String>())
    {
        let n: usize = n.parse().unwrap_or_else(|_| panic!("a bare `$` in {sql}"));
        assert!(
            (1..=params.len()).contains(&n),
            "${n} without a parameter ({} bound): {sql}",
            params.len()
        );
    }
});
