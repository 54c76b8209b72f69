//! The node's default region for phone numbers written in national form.

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;

/// An ISO 3166-1 alpha-2 region known to libphonenumber's metadata (e.g. `CN`, `US`, `GB`,
/// `IT`): its dialling rules (international prefix, trunk prefix, number lengths) read phone
/// numbers written without `+`. `UK` is accepted as an alias of `GB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Region(Id);

/// A string that is not a region libphonenumber knows, or a calling code with no main region.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseRegionError(String);

impl Region {
    /// The region whose rules apply to national numbers of `calling_code` (its "main country",
    /// e.g. 1 → `US`, 44 → `GB`, 86 → `CN`, 39 → `IT`). For configs that name a country
    /// calling code instead of a region.
    ///
    /// # Errors
    /// When no region has that calling code (or it is non-geographic, e.g. 800).
    pub fn for_calling_code(calling_code: u16) -> Result<Region, ParseRegionError> {
        let metas = DATABASE.by_code(&calling_code).unwrap_or_default();
        let main = metas
            .iter()
            .find(|m| m.is_main_country_for_code())
            .or_else(|| metas.first())
            .filter(|m| m.id() != "001");
        main.and_then(|m| m.id().parse::<Id>().ok())
            .map(Region)
            .ok_or_else(|| {
                ParseRegionError(format!(
                    "country calling code {calling_code} has no region; set a default region (ISO 3166 alpha-2, e.g. CN) instead"
                ))
            })
    }

    /// The ISO 3166-1 alpha-2 code, e.g. `"GB"`.
    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    /// The region's country calling code, e.g. 44 for `GB`.
    pub fn calling_code(&self) -> u16 {
        self.metadata().map_or(0, |m| m.country_code())
    }

    pub(crate) fn id(&self) -> Id {
        self.0
    }

    /// libphonenumber's metadata of the region (present for every constructed `Region`).
    pub(crate) fn metadata(&self) -> Option<&'static phonenumber::Metadata> {
        DATABASE.by_id(self.0.as_ref())
    }
}

impl FromStr for Region {
    type Err = ParseRegionError;

    /// Parses an ISO 3166-1 alpha-2 code in any case; `UK` means `GB`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let code = if upper == "UK" { "GB" } else { upper.as_str() };
        code.parse::<Id>()
            .ok()
            .filter(|id| DATABASE.by_id(id.as_ref()).is_some())
            .map(Region)
            .ok_or_else(|| {
                ParseRegionError(format!(
                    "unknown region {s:?}: expected an ISO 3166-1 alpha-2 code such as CN, US, GB or IT"
                ))
            })
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Region;

    #[test]
    fn parses_codes_and_the_uk_alias() {
        for (given, code, cc) in [
            ("CN", "CN", 86),
            ("us", "US", 1),
            ("UK", "GB", 44),
            ("gb", "GB", 44),
            ("IT", "IT", 39),
        ] {
            let r: Region = given.parse().unwrap();
            assert_eq!(r.as_str(), code);
            assert_eq!(r.calling_code(), cc);
        }
        for bad in ["", "XX", "China", "001"] {
            assert!(bad.parse::<Region>().is_err(), "{bad}");
        }
    }

    #[test]
    fn calling_codes_map_to_their_main_region() {
        for (cc, code) in [(86, "CN"), (1, "US"), (44, "GB"), (39, "IT"), (7, "RU")] {
            assert_eq!(Region::for_calling_code(cc).unwrap().as_str(), code);
        }
        assert!(Region::for_calling_code(800).is_err());
        assert!(Region::for_calling_code(999).is_err());
    }
}
