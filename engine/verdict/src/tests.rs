use super::*;

fn v(syms: &[(&str, f64)]) -> Verdict {
    let mut v = Verdict::new();
    for (n, s) in syms {
        v.add(*n, *s, format!("{n} reason"));
    }
    v
}

#[test]
fn thresholds_map_totals_to_actions() {
    let t = Thresholds::default();
    let cases = [
        (0.0, Action::Deliver),
        (4.99, Action::Deliver),
        (5.0, Action::TagHeader),
        (9.9, Action::TagHeader),
        (10.0, Action::Quarantine),
        (15.0, Action::Reject),
        (1000.0, Action::Reject),
        (-50.0, Action::Deliver),
    ];
    for (score, want) in cases {
        assert_eq!(t.action_for(score), want, "score {score}");
    }
    let subject = Thresholds { tag_action: Action::TagSubject, ..t };
    assert_eq!(subject.action_for(6.0), Action::TagSubject);
    let no_quarantine = Thresholds { quarantine: 0.0, ..t };
    assert_eq!(no_quarantine.action_for(12.0), Action::TagHeader, "a limit of 0 is off");
}

#[test]
fn symbols_add_up_and_a_repeated_symbol_counts_once() {
    let mut x = v(&[("DNSBL_A", 6.0), ("RDNS_NONE", 2.0)]);
    x.add("DNSBL_A", 6.0, "again");
    assert_eq!(x.score(), 8.0);
    assert_eq!(x.symbols().len(), 2);
    assert_eq!(x.breakdown(), "DNSBL_A(6), RDNS_NONE(2)");
    assert_eq!(x.main_reason().unwrap().name, "DNSBL_A");
}

#[test]
fn forces_override_scores() {
    let t = Thresholds::default();
    let mut x = v(&[("BL_IP", 100.0)]);
    assert_eq!(x.action(&t, None), Action::Reject);
    x.force(Force::NoNdr("BL_FROM".into()));
    assert_eq!(x.action(&t, None), Action::Quarantine, ":NoNDR keeps spam instead of bouncing");
    x.force(Force::Discard("BL_FROM".into()));
    assert_eq!(x.action(&t, None), Action::Discard, ":NULL wins over everything but whitelists");
    x.force(Force::Pass("WL_IP".into()));
    assert_eq!(x.action(&t, None), Action::Deliver);
    // :NoNDR on a message that is not spam by score changes nothing.
    let mut y = v(&[("X", 1.0)]);
    y.force(Force::NoNdr("BL".into()));
    assert_eq!(y.action(&t, None), Action::Deliver);
}

#[test]
fn unfiltered_recipients_are_delivered_and_tagged_if_spam() {
    let t = Thresholds::default();
    let spam = v(&[("BL_IP", 100.0)]);
    let ham = v(&[("X", 1.0)]);
    assert_eq!(spam.action(&t, Some(Unfiltered::Pass)), Action::Deliver);
    assert_eq!(spam.action(&t, Some(Unfiltered::Tag)), Action::TagHeader);
    assert_eq!(spam.action(&t, Some(Unfiltered::TagSubject)), Action::TagSubject);
    assert_eq!(ham.action(&t, Some(Unfiltered::Tag)), Action::Deliver);
    let mut null = v(&[]);
    null.force(Force::Discard("BL_TO".into()));
    assert_eq!(null.action(&t, Some(Unfiltered::TagSubject)), Action::TagSubject, "an unfiltered user never loses mail");
}

#[test]
fn headers_carry_score_action_and_folded_symbols() {
    let mut x = Verdict::new();
    for i in 0..12 {
        x.add(format!("SOME_LONG_SYMBOL_{i}"), 1.5, "r");
    }
    x.add("NEG", -0.25, "r");
    let h = x.headers(Action::TagHeader);
    assert!(h.starts_with("X-mxguard-Score: 17.75\r\nX-mxguard-Action: tag\r\nX-mxguard-Symbols: SOME_LONG_SYMBOL_0(1.5),"), "{h}");
    for line in h.split("\r\n") {
        assert!(line.len() <= 78, "line too long: {line:?}");
    }
    let unfolded = h.replace("\r\n\t", " ");
    assert!(unfolded.ends_with(&format!("X-mxguard-Symbols: {}\r\n", x.breakdown())), "{unfolded}");
    assert_eq!(unfolded.matches("(1.5)").count(), 12);
    assert!(h.ends_with("\r\n"));
}

#[test]
fn score_formatting() {
    assert_eq!(fmt_score(6.0), "6");
    assert_eq!(fmt_score(1.5), "1.5");
    assert_eq!(fmt_score(-0.25), "-0.25");
    assert_eq!(fmt_score(-0.001), "0");
    assert_eq!(fmt_score(2.345), "2.35");
}

#[test]
fn subject_tagging() {
    let head = b"From: a@b\r\nSubject: hello\r\nTo: c@d\r\n";
    assert_eq!(tag_subject(head, "SPAM:"), b"From: a@b\r\nSubject: SPAM: hello\r\nTo: c@d\r\n");
    assert_eq!(tag_subject(b"SUBJECT:x\r\n", "[SPAM]"), b"Subject: [SPAM] x\r\n");
    assert_eq!(tag_subject(b"Subject: SPAM: already\r\n", "SPAM:"), b"Subject: SPAM: already\r\n");
    assert_eq!(tag_subject(b"From: a@b\r\n", "SPAM:"), b"From: a@b\r\nSubject: SPAM:\r\n");
    assert_eq!(tag_subject(b"Subject: no crlf", "SPAM:"), b"Subject: SPAM: no crlf\r\n");
    // A folded subject keeps its continuation lines.
    assert_eq!(tag_subject(b"Subject: a\r\n b\r\n", "SPAM:"), b"Subject: SPAM: a\r\n b\r\n");
}

#[test]
fn templates_expand_reference_variables() {
    let vars = TemplateVars { ip: "192.0.2.1", domain: "spam.example", email_to: "u@example.test", email_from: "x@spam.example" };
    assert_eq!(
        expand("Rejected %IP% (from %Domain%, %EMailFrom% to %EMailTo%)", &vars),
        "Rejected 192.0.2.1 (from spam.example, x@spam.example to u@example.test)"
    );
    assert_eq!(expand("%ip% %DOMAIN%", &vars), "192.0.2.1 spam.example");
    assert_eq!(expand("100% sure %Other% %", &vars), "100% sure %Other% %");
    let evil = TemplateVars { email_from: "a\r\n250 ok", ..vars };
    assert_eq!(expand("from %EMailFrom%", &evil), "from a??250 ok");
}
