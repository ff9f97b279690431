//! HTTP plumbing shared by the web pages and the API: responses with the console's security
//! headers, the session cookie, form and query decoding. Nothing here knows about accounts.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use hyper::{Request, Response, StatusCode};

pub type Resp = Response<Full<Bytes>>;

pub fn respond(status: StatusCode, content_type: &str, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")));
    h.insert("content-security-policy", HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

pub fn html(status: StatusCode, body: String) -> Resp {
    respond(status, "text/html; charset=utf-8", body)
}

/// A document shown inside one of the console's own pages, under its own policy (`csp`).
pub fn framed(body: String, csp: &'static str) -> Resp {
    let mut r = respond(StatusCode::OK, "text/html; charset=utf-8", body);
    r.headers_mut().insert("content-security-policy", HeaderValue::from_static(csp));
    r
}

pub fn redirect(to: &str, cookie: Option<String>) -> Resp {
    let mut r = respond(StatusCode::SEE_OTHER, "text/plain", String::new());
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(SET_COOKIE, c);
    }
    r
}

pub const COOKIE_NAME: &str = "mxg_session";

pub fn session_cookie(token: &str, secure: bool) -> String {
    format!("{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict{}", if secure { "; Secure" } else { "" })
}

pub fn cookie_token(req: &Request<Incoming>) -> Option<String> {
    req.headers().get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == COOKIE_NAME).then(|| v.to_string())
    })
}

/// `application/x-www-form-urlencoded` pairs, decoded by the `form_urlencoded` crate (the `url`
/// crate's, WHATWG rules): `+` is a space, `%XX` a byte, anything else as written, invalid
/// UTF-8 replaced.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

pub fn field<'a>(f: &'a [(String, String)], name: &str) -> &'a str {
    f.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// A JSON response.
pub fn json(status: StatusCode, v: &serde_json::Value) -> Resp {
    respond(status, "application/json", v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f = form(b"email=ann%40example.test&password=a+b%2Bc%&csrf=&x");
        assert_eq!(field(&f, "email"), "ann@example.test");
        assert_eq!(field(&f, "password"), "a b+c%");
        assert_eq!(field(&f, "csrf"), "");
        assert_eq!(field(&f, "x"), "");
        assert_eq!(field(&f, "missing"), "");
        assert_eq!(field(&form("k=%E2%9C%93%zz".as_bytes()), "k"), "✓%zz");
        // An escape is two hex digits: `%+4` is not 0x04 (the hand-written decoder took it so).
        assert_eq!(field(&form(b"k=%+4"), "k"), "% 4");
    }
}
