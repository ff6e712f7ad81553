//! The kubeconfig that points kubectl at the gateway: one cluster whose server is the
//! connection's address on the HTTP listener (`<base>/c/<connection>`), one user with
//! the agent's token (inline, or a file kubectl re-reads, for tokens that are renewed),
//! and a context that joins them. Every value is written as a double-quoted scalar, so
//! nothing in a name or a token can change the document's shape.

/// What the kubeconfig says.
pub struct Kubeconfig<'a> {
    /// The HTTP listener's base URL (`https://gateway:8480`).
    pub gateway: &'a str,
    pub connection: &'a str,
    pub credential: Credential<'a>,
    /// PEM of the CA that signed the gateway's certificate, for a TLS listener.
    pub ca_pem: Option<&'a [u8]>,
    /// The namespace the context starts in.
    pub namespace: Option<&'a str>,
}

pub enum Credential<'a> {
    Token(&'a str),
    TokenFile(&'a str),
}

impl Kubeconfig<'_> {
    /// The kubeconfig as YAML.
    pub fn render(&self) -> String {
        let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let name = format!("sluice-{}", self.connection);
        let server = format!(
            "{}/c/{}",
            self.gateway.trim_end_matches('/'),
            self.connection
        );
        let mut out = String::new();
        out.push_str("apiVersion: v1\nkind: Config\n");
        out.push_str(&format!(
            "clusters:\n- name: {}\n  cluster:\n    server: {}\n",
            q(&name),
            q(&server)
        ));
        if let Some(pem) = self.ca_pem {
            use base64::Engine;
            out.push_str(&format!(
                "    certificate-authority-data: {}\n",
                q(&base64::engine::general_purpose::STANDARD.encode(pem))
            ));
        }
        out.push_str(&format!("users:\n- name: {}\n  user:\n", q(&name)));
        match self.credential {
            Credential::Token(token) => out.push_str(&format!("    token: {}\n", q(token))),
            Credential::TokenFile(path) => out.push_str(&format!("    tokenFile: {}\n", q(path))),
        }
        out.push_str(&format!(
            "contexts:\n- name: {}\n  context:\n    cluster: {}\n    user: {}\n",
            q(&name),
            q(&name),
            q(&name)
        ));
        if let Some(namespace) = self.namespace {
            out.push_str(&format!("    namespace: {}\n", q(namespace)));
        }
        out.push_str(&format!("current-context: {}\n", q(&name)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_change_the_shape() {
        let text = Kubeconfig {
            gateway: "http://127.0.0.1:8480/",
            connection: "staging",
            credential: Credential::Token("abc\"\ncurrent-context: evil"),
            ca_pem: Some(b"-----BEGIN CERTIFICATE-----"),
            namespace: Some("apps"),
        }
        .render();
        assert!(text.contains("server: \"http://127.0.0.1:8480/c/staging\""));
        assert!(text.contains("token: \"abc\\\"\\ncurrent-context: evil\""));
        assert_eq!(text.matches("\ncurrent-context:").count(), 1);
        assert!(text.contains("certificate-authority-data: \"LS0t"));
    }
}
