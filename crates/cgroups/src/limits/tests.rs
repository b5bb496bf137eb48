//! The command-line limit parsers on good and bad input, and the checks across limits.

use super::*;

#[test]
fn memory_suffixes() {
    assert_eq!(parse_memory("64M").unwrap(), 64 << 20);
    assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
    assert_eq!(parse_memory("64mb").unwrap(), 64 << 20);
    assert_eq!(parse_memory("64MiB").unwrap(), 64 << 20);
    assert_eq!(parse_memory("512k").unwrap(), 512 << 10);
    assert_eq!(parse_memory("2G").unwrap(), 2 << 30);
    assert_eq!(parse_memory("1t").unwrap(), 1 << 40);
    assert_eq!(parse_memory("1.5g").unwrap(), 3 << 29);
    assert_eq!(parse_memory("1048576").unwrap(), 1 << 20);
    assert_eq!(parse_memory("100b").unwrap(), 100);
    assert_eq!(parse_memory(" 8M ").unwrap(), 8 << 20);
}

#[test]
fn memory_rejects_bad_input() {
    assert!(matches!(
        parse_memory("-5M"),
        Err(LimitError::Negative { .. })
    ));
    assert!(matches!(
        parse_memory("abc"),
        Err(LimitError::Syntax { .. })
    ));
    assert!(matches!(parse_memory("0"), Err(LimitError::Zero { .. })));
    assert!(matches!(parse_memory("0k"), Err(LimitError::Zero { .. })));
    assert!(matches!(
        parse_memory("1.5.3"),
        Err(LimitError::Syntax { .. })
    ));
    assert!(matches!(parse_memory(""), Err(LimitError::Empty { .. })));
    assert!(matches!(
        parse_memory("1.5"),
        Err(LimitError::Syntax { .. })
    ));
    assert!(matches!(parse_memory("5x"), Err(LimitError::Syntax { .. })));
    assert!(matches!(parse_memory("m"), Err(LimitError::Syntax { .. })));
    assert!(matches!(
        parse_memory("5ib"),
        Err(LimitError::Syntax { .. })
    ));
    assert!(matches!(
        parse_memory("+5m"),
        Err(LimitError::Syntax { .. })
    ));
    assert!(matches!(
        parse_memory("99999999999t"),
        Err(LimitError::Overflow { .. })
    ));
    assert!(matches!(
        parse_memory("999999999999999999999999999999999999999999"),
        Err(LimitError::Overflow { .. })
    ));
    // Messages are one line and name the option and the input.
    let msg = parse_memory("abc").unwrap_err().to_string();
    assert!(!msg.contains('\n'));
    assert!(msg.contains("--memory") && msg.contains("abc"), "{msg}");
}

#[test]
fn swap_parsing_and_rules() {
    assert_eq!(parse_memory_swap("-1").unwrap(), -1);
    assert_eq!(parse_memory_swap("128m").unwrap(), 128 << 20);
    assert!(parse_memory_swap("-2").is_err());
    let mut r = Resources {
        memory_limit_bytes: Some(64 << 20),
        memory_swap_limit_bytes: Some(32 << 20),
        ..Default::default()
    };
    assert!(matches!(
        r.validate(),
        Err(LimitError::SwapBelowMemory { .. })
    ));
    r.memory_swap_limit_bytes = Some(-1);
    r.validate().unwrap();
    r.memory_swap_limit_bytes = Some(64 << 20);
    r.validate().unwrap();
    r.memory_limit_bytes = None;
    assert_eq!(r.validate(), Err(LimitError::SwapWithoutMemory));
}

#[test]
fn cpus() {
    assert_eq!(
        parse_cpus("0.5").unwrap(),
        CpuQuota {
            quota_us: 50_000,
            period_us: 100_000
        }
    );
    assert_eq!(parse_cpus("2").unwrap().quota_us, 200_000);
    let four = parse_cpus("4").unwrap();
    assert!(check_cpus_available("4", &four, 4).is_ok());
    let err = check_cpus_available("4", &four, 2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--cpus \"4\": range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
    );
    assert!(check_cpus_available("2.5", &parse_cpus("2.5").unwrap(), 2).is_err());
    assert_eq!(parse_cpus("1.25").unwrap().quota_us, 125_000);
    assert_eq!(parse_cpus("0.01").unwrap().quota_us, 1_000);
    assert!((parse_cpus("0.5").unwrap().cpus() - 0.5).abs() < 1e-9);
    assert!(matches!(parse_cpus("0"), Err(LimitError::Zero { .. })));
    assert!(matches!(parse_cpus("0.0"), Err(LimitError::Zero { .. })));
    assert!(matches!(parse_cpus("-1"), Err(LimitError::Negative { .. })));
    assert!(matches!(parse_cpus("abc"), Err(LimitError::Syntax { .. })));
    assert!(matches!(
        parse_cpus("1.5.3"),
        Err(LimitError::Syntax { .. })
    ));
    assert!(matches!(parse_cpus(""), Err(LimitError::Empty { .. })));
    assert!(matches!(parse_cpus(".5"), Err(LimitError::Syntax { .. })));
    assert!(matches!(
        parse_cpus("0.001"),
        Err(LimitError::OutOfRange { .. })
    ));
    assert!(matches!(
        parse_cpus("0.123456"),
        Err(LimitError::Syntax { .. })
    ));
    assert!(matches!(
        parse_cpus("99999999999999999999999"),
        Err(LimitError::Overflow { .. })
    ));
}

#[test]
fn integers_and_lists() {
    assert_eq!(parse_cpu_shares("1024").unwrap(), 1024);
    assert!(matches!(
        parse_cpu_shares("1"),
        Err(LimitError::OutOfRange { .. })
    ));
    assert!(matches!(
        parse_cpu_shares("0"),
        Err(LimitError::Zero { .. })
    ));
    assert_eq!(parse_pids_limit("32").unwrap(), 32);
    assert!(matches!(
        parse_pids_limit("-1"),
        Err(LimitError::Negative { .. })
    ));
    assert!(matches!(
        parse_pids_limit("3.5"),
        Err(LimitError::Syntax { .. })
    ));
    assert!(matches!(
        parse_pids_limit("99999999999999999999999"),
        Err(LimitError::Overflow { .. })
    ));
    assert_eq!(parse_io_weight("500").unwrap(), 500);
    assert!(matches!(
        parse_io_weight("5"),
        Err(LimitError::OutOfRange { .. })
    ));
    assert_eq!(parse_cpuset_cpus("0-1,3").unwrap(), "0-1,3");
    assert_eq!(parse_cpuset_mems(" 0 ").unwrap(), "0");
    assert!(parse_cpuset_cpus("1-0").is_err());
    assert!(parse_cpuset_cpus("a").is_err());
    assert!(parse_cpuset_cpus("0,,1").is_err());
    assert!(parse_cpuset_cpus("").is_err());
    assert!(parse_cpuset_cpus("99999").is_err());
}

#[test]
fn conversions_match_crun_and_runc() {
    assert_eq!(cpu_shares_to_weight(2), 1);
    assert_eq!(cpu_shares_to_weight(262_144), 10_000);
    assert_eq!(cpu_shares_to_weight(1024), 39);
    assert_eq!(io_weight_to_v2(10), 1);
    assert_eq!(io_weight_to_v2(1000), 10_000);
    assert_eq!(io_weight_to_v2(500), 4950);
}
