//! Connection URLs in messages, without their secrets.

/// The URL with any password replaced by `***`, for messages: the one in the user info and
/// the values of query options whose names speak of a password, secret or key
/// (`tlsCertificateKeyFilePassword=`, `sslpassword=`, …).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".to_owned();
    };
    let shown = match rest.rsplit_once('@') {
        Some((creds, host)) => {
            let user = creds.split_once(':').map_or(creds, |(u, _)| u);
            if creds.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                format!("{scheme}://{user}@{host}")
            }
        }
        None => url.to_owned(),
    };
    let Some((base, query)) = shown.split_once('?') else {
        return shown;
    };
    let options: Vec<String> = query
        .split('&')
        .map(|option| match option.split_once('=') {
            Some((name, _)) if is_secret_option(name) => format!("{name}=***"),
            _ => option.to_owned(),
        })
        .collect();
    format!("{base}?{}", options.join("&"))
}

fn is_secret_option(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "passphrase", "token"]
        .iter()
        .any(|word| name.contains(word))
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
        assert_eq!(
            redact_url("mongodb://h/?tls=true&tlsCertificateKeyFilePassword=k3y&x=1"),
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=***&x=1"
        );
        assert_eq!(redact_url("mysql://a:p@ss@h/d"), "mysql://a:***@h/d");
    }
}
