use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn addresses_cidrs_and_class_c() {
    let l = List::parse("t", "# blacklist\n192.0.2.7\n198.51.100.0\n10.0.0.0/8\n2001:db8::/32\n203.0.113.*\n\n").unwrap();
    assert_eq!(l.len(), 5);
    assert_eq!(l.match_ip(ip("192.0.2.7")).unwrap().line, 2);
    assert!(l.match_ip(ip("192.0.2.8")).is_none());
    assert_eq!(l.match_ip(ip("198.51.100.200")).unwrap().line, 3, "a.b.c.0 is the class C");
    assert_eq!(l.match_ip(ip("10.200.1.1")).unwrap().entry, "10.0.0.0/8");
    assert_eq!(l.match_ip(ip("2001:db8:1::5")).unwrap().line, 5);
    assert_eq!(l.match_ip(ip("::ffff:192.0.2.7")).unwrap().line, 2, "v4-mapped looks up as v4");
    assert_eq!(l.match_ip(ip("203.0.113.44")).unwrap().line, 6, "wildcards over the address text");
    assert!(l.match_ip(ip("203.0.114.44")).is_none());
}

#[test]
fn longest_prefix_wins() {
    let l = List::parse("t", "10.0.0.0/8:TAG\n10.1.0.0/16:NULL\n").unwrap();
    assert!(l.match_ip(ip("10.1.2.3")).unwrap().opts.null);
    assert!(l.match_ip(ip("10.2.2.3")).unwrap().opts.tag);
}

#[test]
fn names_wildcards_regexes_and_options() {
    let text = "spam.example\n*.bulk.example:NoNDR\nmail?.junk.example\n(^[0-9]+\\.dyn\\.)\nhoney.example:Honeypot\nnull.example:null\n";
    let l = List::parse("t", text).unwrap();
    assert_eq!(l.match_name("SPAM.example.").unwrap().line, 1);
    assert!(l.match_name("sub.spam.example").is_none(), "an exact name does not cover subdomains");
    let h = l.match_name("a.b.bulk.example").unwrap();
    assert_eq!((h.line, h.opts.no_ndr), (2, true));
    assert!(l.match_name("bulk.example").is_none());
    assert_eq!(l.match_name("mail1.junk.example").unwrap().line, 3);
    assert!(l.match_name("mail12.junk.example").is_none(), "? is one character");
    assert_eq!(l.match_name("123.dyn.isp.example").unwrap().line, 4);
    assert!(l.match_name("honey.example").unwrap().opts.honeypot);
    assert!(l.match_name("null.example").unwrap().opts.null);
}

#[test]
fn addresses_match_exactly_by_domain_and_by_pattern() {
    let l = List::parse("t", "bad@spam.example\nwhole.example\n*@*.wild.example\n(^admin@)\n").unwrap();
    assert_eq!(l.match_address("BAD@spam.example").unwrap().line, 1);
    assert!(l.match_address("good@spam.example").is_none());
    assert_eq!(l.match_address("anyone@whole.example").unwrap().line, 2);
    assert_eq!(l.match_address("x@a.wild.example").unwrap().line, 3);
    assert_eq!(l.match_address("admin@x.example").unwrap().line, 4);
}

#[test]
fn the_first_matching_line_wins() {
    let l = List::parse("t", "*.example:TAG\n(example$):NULL\n").unwrap();
    assert!(l.match_name("a.example").unwrap().opts.tag);
}

#[test]
fn bad_lines_name_their_line_and_fail_the_whole_file() {
    let e = List::parse("lists/x.txt", "ok.example\n10.0.0.0/40\n").unwrap_err();
    assert_eq!(e, "lists/x.txt:2: '10.0.0.0/40': prefix length above 32");
    let e = List::parse("x", "a\nb\n(unclosed[)\n").unwrap_err();
    assert!(e.starts_with("x:3: (unclosed[): "), "{e}");
    let e = List::parse("x", "((a)\\1)\nok\n((?<=x)y)\n").unwrap_err();
    assert!(e.starts_with("x:1: ((a)\\1): ") && e.contains("; x:3: ((?<=x)y): "), "{e}");
    let e = List::parse("x", "two words\n").unwrap_err();
    assert!(e.starts_with("x:1: "), "{e}");
    let e = List::parse("x", ":NULL\n").unwrap_err();
    assert!(e.starts_with("x:1: "), "{e}");
}

#[test]
fn missing_file_is_empty_and_bytes_that_are_not_utf8_are_refused() {
    let l = List::load(Path::new("/nonexistent/mxguard/list.txt")).unwrap();
    assert!(l.is_empty());
    let dir = std::env::temp_dir().join(format!("mxg-list-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("l.txt");
    std::fs::write(&f, b"ok\n\xff\xfe\n").unwrap();
    let e = List::load(&f).unwrap_err();
    assert!(e.ends_with(":2: not UTF-8"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ipv6_entries_keep_their_colons() {
    let l = List::parse("t", "2001:db8::1\n2001:db8::2:NULL\n").unwrap();
    assert!(!l.match_ip(ip("2001:db8::1")).unwrap().opts.null);
    assert!(l.match_ip(ip("2001:db8::2")).unwrap().opts.null);
}

#[test]
fn domain_wildcards_by_suffix_keep_glob_meaning_and_line_order() {
    let l = List::parse("t", "(^a\\.b\\.x\\.example$)\n*.x.example\n*.EXAMPLE.org:NULL\nmx?.x.example\n").unwrap();
    assert_eq!(l.match_name("a.b.x.example").unwrap().line, 1, "the earlier regex line wins");
    assert_eq!(l.match_name("c.b.x.example").unwrap().line, 2);
    assert_eq!(l.match_name("mx1.x.example").unwrap().line, 2, "the earlier suffix line wins");
    assert!(l.match_name("x.example").is_none() && l.match_name("ax.example").is_none());
    let h = l.match_name("Deep.Sub.example.org.").unwrap();
    assert!(h.opts.null && h.line == 3);
    assert_eq!(l.match_address("user@host.x.example").unwrap().line, 2, "glob * spans the @");
    assert!(l.match_address("user@x.example").is_none());
}

#[test]
fn mistyped_addresses_are_refused() {
    for bad in ["10.0.0.300", "10.0.0", "192.168.1.1.1"] {
        let e = List::parse("ip.txt", &format!("# x\n{bad}\n")).err().unwrap_or_else(|| panic!("{bad} was taken"));
        assert!(e.starts_with("ip.txt:2:") && e.contains("not an IPv4 address"), "{e}");
    }
    // In an address list a name is a mistake; in a name list it is the point.
    let l = List::parse("ip.txt", "192.0.2.1\n203.0.113.*\nspam.example\n").unwrap();
    assert_eq!(l.addresses_only().unwrap_err(), "ip.txt:3: 'spam.example': not an address, address block or pattern");
    assert!(List::parse("ip.txt", "192.0.2.1\n(^10\\.)\n2001:db8::/32\n").unwrap().addresses_only().is_ok());
}

#[test]
fn fully_qualified_entries_drop_the_final_dot_like_the_names_they_match() {
    // Found by the policy_lists fuzz target: a wildcard written with the root's dot never matched.
    let l = List::parse("t", "*.example.com.\nmail?.example.net..\nexact.example.org.\n").unwrap();
    assert_eq!(l.match_name("a.example.com").unwrap().line, 1);
    assert_eq!(l.match_name("a.example.com.").unwrap().line, 1);
    assert_eq!(l.match_name("mail1.example.net").unwrap().line, 2);
    assert_eq!(l.match_name("exact.example.org").unwrap().line, 3);
    assert_eq!(l.match_address("u@b.example.com").unwrap().line, 1);
    assert!(l.match_name("example.com").is_none());
}
