//! Audio (being written).
