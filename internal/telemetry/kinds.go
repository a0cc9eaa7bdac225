package telemetry

// Kind names what happened. Metrics count events by kind, the dashboard
// shows it, and alert rules select on it (config.EventKinds holds the same
// names as strings, for validating a config without this package).
type Kind string

// The kinds of event Rampart publishes.
const (
	// A guard, or the response checks, refused or changed a request.
	RequestBlocked           Kind = "request_blocked"
	DebugLeakBlocked         Kind = "debug_leak_blocked"
	OpenRedirectBlocked      Kind = "open_redirect_blocked"
	InsecureRedirectUpgraded Kind = "insecure_redirect_upgraded"
	CookieHardened           Kind = "cookie_hardened"
	HeaderDropped            Kind = "header_dropped"
	CSPViolation             Kind = "csp_violation"
	CSPReportRefused         Kind = "csp_report_refused"
	UpstreamError            Kind = "upstream_error"
	WAFMatch                 Kind = "waf_match"
	PathMerged               Kind = "path_merged"
	PlainHTTPForm            Kind = "plain_http_form"
	RequestCut               Kind = "request_cut"
	UploadUnexpected         Kind = "upload_unexpected"
	UploadRenamed            Kind = "upload_renamed"
	UploadMalware            Kind = "upload_malware"
	UploadNotScanned         Kind = "upload_not_scanned"

	// The login portal.
	Login           Kind = "login"
	LoginPasswordOK Kind = "login_password_ok"
	LoginFailed     Kind = "login_failed"
	LoginRefused    Kind = "login_refused"
	Lockout         Kind = "lockout"
	MFAEnrolled     Kind = "mfa_enrolled"
	Logout          Kind = "logout"

	// Rampart's own state: the store, the spool's disk, connections,
	// certificates and the config.
	StoreDown          Kind = "store_down"
	StoreUp            Kind = "store_up"
	StoreFull          Kind = "store_full"
	StoreEmptied       Kind = "store_emptied"
	SpoolWriteFailed   Kind = "spool_write_failed"
	SpoolWriteOK       Kind = "spool_write_ok"
	ConnectionLimit    Kind = "connection_limit"
	ConnectionRefused  Kind = "connection_refused"
	CertExpiring       Kind = "cert_expiring"
	ACMECertObtaining  Kind = "acme_cert_obtaining"
	ACMECertObtained   Kind = "acme_cert_obtained"
	ACMECertFailed     Kind = "acme_cert_failed"
	ACMEOCSPRevoked    Kind = "acme_cert_ocsp_revoked"
	ACMECachedCert     Kind = "acme_cached_managed_cert"
	ClamdDown          Kind = "clamd_down"
	ClamdUp            Kind = "clamd_up"
	ConfigReloaded     Kind = "config_reloaded"
	ConfigReloadFailed Kind = "config_reload_failed"

	// Rampart's audit of its own sites (self_audit).
	AuditRegressed Kind = "audit_regressed"
	AuditRecovered Kind = "audit_recovered"
)

// Status5xx is not published: it names responses with a 5xx status, which
// the gateway hands to the alerts alone (config.StatusKind).
const Status5xx Kind = "status_5xx"

// Kinds are every kind Rampart publishes.
var Kinds = []Kind{
	RequestBlocked, DebugLeakBlocked, OpenRedirectBlocked, InsecureRedirectUpgraded, CookieHardened, HeaderDropped,
	CSPViolation, CSPReportRefused, UpstreamError, WAFMatch, PathMerged, PlainHTTPForm, RequestCut,
	UploadUnexpected, UploadRenamed, UploadMalware, UploadNotScanned, ClamdDown, ClamdUp,
	Login, LoginPasswordOK, LoginFailed, LoginRefused, Lockout, MFAEnrolled, Logout,
	StoreDown, StoreUp, StoreFull, StoreEmptied, SpoolWriteFailed, SpoolWriteOK, ConnectionLimit, ConnectionRefused,
	CertExpiring, ACMECertObtaining, ACMECertObtained, ACMECertFailed, ACMEOCSPRevoked, ACMECachedCert,
	ConfigReloaded, ConfigReloadFailed, AuditRegressed, AuditRecovered,
}
