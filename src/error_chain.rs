//! An error and its sources on one line, for logs and operator messages: `outer: cause:
//! root cause`, with a cause left out when the text before already says it.

/// `e` and every error in its source chain, joined by `": "`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(&'static str, std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn joins_causes_and_skips_repeats() {
        let e = Outer(
            "cannot store the instance",
            std::io::Error::other("disk full"),
        );
        assert_eq!(error_chain(&e), "cannot store the instance: disk full");
        let repeated = Outer(
            "write failed: disk full",
            std::io::Error::other("disk full"),
        );
        assert_eq!(error_chain(&repeated), "write failed: disk full");
    }
}
