//! The live console page, served by the HTTP API at `/console` without an API key (the page
//! asks the operator for the key and sends it on every call).
//!
//! Three static files (`console/index.html`, `console.js`, `console.css`: plain HTML, CSS and
//! JavaScript, no framework, no build step, no CDN) are embedded in the binary. The page uses
//! only the public HTTP API and the client WebSocket protocol, so it is also an example of a
//! browser client. [`asset`] is the lookup the API's `static_files` option takes.

/// The page itself (`/console`, `/console/`, `/console/index.html`).
const INDEX_HTML: &[u8] = include_bytes!("console/index.html");
/// The page's script: polling, graph, publish box, live feed.
const CONSOLE_JS: &[u8] = include_bytes!("console/console.js");
/// The page's style sheet.
const CONSOLE_CSS: &[u8] = include_bytes!("console/console.css");

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The console file at `path` (what follows `/console/` in the URL; `""` and `"index.html"` are
/// the page), as `(content type, bytes)`. Any other path is `None` (the API answers 404).
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    match path {
        "" | "index.html" => Some((HTML, INDEX_HTML)),
        "console.js" => Some((JAVASCRIPT, CONSOLE_JS)),
        "console.css" => Some((CSS, CONSOLE_CSS)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> &'static str {
        std::str::from_utf8(INDEX_HTML).expect("index.html is UTF-8")
    }

    #[test]
    fn empty_path_and_index_html_serve_the_page() {
        for path in ["", "index.html"] {
            let (content_type, bytes) = asset(path).expect("the page");
            assert_eq!(content_type, "text/html; charset=utf-8");
            assert!(bytes.starts_with(b"<!doctype html>"), "{path:?}");
        }
    }

    #[test]
    fn script_and_style_sheet_have_their_content_types() {
        assert_eq!(asset("console.js").map(|a| a.0), Some(JAVASCRIPT));
        assert_eq!(asset("console.css").map(|a| a.0), Some(CSS));
        assert!(asset("console.js").is_some_and(|(_, b)| !b.is_empty()));
        assert!(asset("console.css").is_some_and(|(_, b)| !b.is_empty()));
    }

    #[test]
    fn unknown_and_traversal_paths_are_none() {
        for path in [
            "missing.js",
            "../Cargo.toml",
            "/console.js",
            "console.js/",
            "CONSOLE.JS",
            "index.html?x=1",
            "console/index.html",
        ] {
            assert_eq!(asset(path), None, "{path:?}");
        }
    }

    #[test]
    fn every_file_the_page_references_is_served() {
        let page = page();
        let mut referenced = 0;
        for attr in ["src=\"", "href=\""] {
            for (at, _) in page.match_indices(attr) {
                let rest = &page[at + attr.len()..];
                let url = &rest[..rest.find('"').expect("closed attribute")];
                if let Some(path) = url.strip_prefix("/console/") {
                    assert!(asset(path).is_some(), "{url} is referenced but not served");
                    referenced += 1;
                } else {
                    assert!(
                        url.starts_with("data:"),
                        "{url} is neither embedded nor data:"
                    );
                }
            }
        }
        assert_eq!(referenced, 2, "the page loads console.js and console.css");
    }

    #[test]
    fn page_has_no_inline_script_or_event_handler() {
        // CSP-friendly: `script-src 'self'` without 'unsafe-inline' must be enough.
        let page = page().to_ascii_lowercase();
        for (at, _) in page.match_indices("<script") {
            let tag = &page[at..at + page[at..].find('>').expect("closed tag")];
            assert!(tag.contains(" src="), "inline script: {tag}");
        }
        for handler in [
            " onclick=",
            " onsubmit=",
            " onload=",
            " oninput=",
            " onchange=",
        ] {
            assert!(!page.contains(handler), "inline handler {handler}");
        }
    }

    #[test]
    fn script_uses_the_spec_routes_and_subscription_message() {
        let js = std::str::from_utf8(CONSOLE_JS).expect("console.js is UTF-8");
        for needle in [
            "'/api/info'",
            "'/api/presence?topic='",
            "'/api/publish'",
            "'/api/token'",
            "'apikey '",
            "access_token=",
            "/wse",
            "t: 'subscription_update'",
        ] {
            assert!(js.contains(needle), "console.js lacks {needle}");
        }
    }
}
