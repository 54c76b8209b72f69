//! tandem-identity
