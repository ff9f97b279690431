//! Rejection texts with the reference products' variables: `%IP%` (the client's address),
//! `%Domain%` (the MAIL FROM domain), `%EMailTo%`, `%EMailFrom%`; matched without regard to case.
//! Values are sanitised so that a text can never break the SMTP reply it goes into.

/// The values a template can name.
#[derive(Debug, Clone, Default)]
pub struct TemplateVars<'a> {
    pub ip: &'a str,
    pub domain: &'a str,
    pub email_to: &'a str,
    pub email_from: &'a str,
}

/// Expands the variables in `template`. Unknown `%NAME%` sequences stay as they are. Control
/// characters (CR, LF, …) in values or the template become `?`.
pub fn expand(template: &str, v: &TemplateVars<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(p) = rest.find('%') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let end = rest[1..].find('%').map(|e| e + 1);
        let value = end.and_then(|e| match rest[1..e].to_ascii_lowercase().as_str() {
            "ip" => Some(v.ip),
            "domain" => Some(v.domain),
            "emailto" => Some(v.email_to),
            "emailfrom" => Some(v.email_from),
            _ => None,
        });
        match (end, value) {
            (Some(e), Some(val)) => {
                out.push_str(val);
                rest = &rest[e + 1..];
            }
            _ => {
                out.push('%');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}
