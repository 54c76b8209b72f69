//! tandem-psi
