//! tandem-audit
