//! SSO: JWTs verified against issuers' JWKS (owned by the SSO engineer).
