//! Every call into opendp lives here: measurement construction, privacy maps, sampling,
//! accuracy and measure conversion. Measurements are built and dropped inside each call
//! because they are neither `Send` nor `Sync`.

use opendp::accuracy::discrete_laplacian_scale_to_accuracy;
use opendp::combinators::{ConcentratedMeasure, FixDeltaMeasure};
use opendp::domains::{AtomDomain, VectorDomain};
use opendp::error::Error;
use opendp::measurements::make_laplace;
use opendp::measures::{MaxDivergence, SmoothedMaxDivergence, ZeroConcentratedDivergence};
use opendp::metrics::{AbsoluteDistance, L1Distance};

use crate::DpError;

/// Keeps opendp's error variant and message (its `Display` shows only the variant).
fn opendp_error(e: Error) -> DpError {
    DpError::OpenDp(match e.message {
        Some(message) => format!("{}: {message}", e.variant),
        None => e.variant.to_string(),
    })
}

/// ε of opendp's discrete Laplace measurement on `i64` at `scale`, mapped at `d_in = sensitivity`.
pub(crate) fn laplace_epsilon(scale: f64, sensitivity: u32) -> Result<f64, DpError> {
    let measurement = make_laplace::<_, _, MaxDivergence>(
        AtomDomain::<i64>::default(),
        AbsoluteDistance::<i64>::default(),
        scale,
        None,
    )
    .map_err(opendp_error)?;
    measurement
        .map(&i64::from(sensitivity))
        .map_err(opendp_error)
}

/// `count` draws of `offset + Z`, `Z ~ DiscreteLaplace(scale)`, from opendp's vector discrete
/// Laplace measurement (exact sampler, OpenSSL randomness) invoked on `count` copies of `offset`.
pub(crate) fn shifted_laplace_draws(
    scale: f64,
    offset: u32,
    count: usize,
) -> Result<Vec<i64>, DpError> {
    let measurement = make_laplace::<_, _, MaxDivergence>(
        VectorDomain::new(AtomDomain::<i64>::default()),
        L1Distance::<i64>::default(),
        scale,
        None,
    )
    .map_err(opendp_error)?;
    measurement
        .invoke(&vec![i64::from(offset); count])
        .map_err(opendp_error)
}

/// opendp's `discrete_laplacian_scale_to_accuracy`: the real `a` with `P(|Z| ≥ a) = alpha`.
pub(crate) fn discrete_laplace_accuracy(scale: f64, alpha: f64) -> Result<f64, DpError> {
    discrete_laplacian_scale_to_accuracy(scale, alpha).map_err(opendp_error)
}

/// ε at `delta` of a `rho`-zCDP mechanism.
///
/// These are the two conversions that `make_zCDP_to_approxDP` and `make_fix_delta` put into a
/// measurement's privacy map, applied to `rho` directly: `ConcentratedMeasure::convert` turns ρ
/// into the privacy profile `δ(ε)` of Canonne–Kamath–Steinke (2020), and
/// `FixDeltaMeasure::fix_delta` searches that profile for the smallest ε with `δ(ε) ≤ delta`.
/// Going through a measurement instead (e.g. `make_gaussian` at `σ = 1/√(2ρ)`) would round ρ.
pub(crate) fn zcdp_to_approx_epsilon(rho: f64, delta: f64) -> Result<f64, DpError> {
    let profile = ZeroConcentratedDivergence::convert(rho).map_err(opendp_error)?;
    let (epsilon, _) = SmoothedMaxDivergence
        .fix_delta(&profile, delta)
        .map_err(opendp_error)?;
    Ok(epsilon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opendp_errors_keep_their_message() {
        let Err(DpError::OpenDp(message)) = laplace_epsilon(f64::NAN, 1) else {
            panic!("NaN scale must be refused by opendp");
        };
        assert!(message.contains("finite"), "{message}");
    }
}
