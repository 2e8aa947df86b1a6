// Package login is the login-event server: an SSO front end (a LiteLLM
// proxy's custom SSO handler) posts each login, authenticated by an HMAC
// signature or a signed JWT (package authn), and gets the user's role back at
// once, while the user is recorded as a ProxyUser (spec only: the ProxyUser
// controller derives every condition from it).
package login
