//! tandem-agreement
