//! Connection URLs in messages, without their secrets.

/// The URL with any password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".to_owned();
    };
    match rest.rsplit_once('@') {
        Some((creds, host)) => {
            let user = creds.split_once(':').map_or(creds, |(u, _)| u);
            if creds.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                format!("{scheme}://{user}@{host}")
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(
            redact_url("mongodb://app:s3cret@db:27017/shop?authSource=admin"),
            "mongodb://app:***@db:27017/shop?authSource=admin"
        );
        assert_eq!(redact_url("mysql://repl@db/x"), "mysql://repl@db/x");
        assert_eq!(redact_url("no url"), "<not a URL>");
        assert_eq!(redact_url("mysql://a:p@ss@h/d"), "mysql://a:***@h/d");
    }
}
