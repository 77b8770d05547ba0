//! What the host reads and writes as text, independent of any stage: CSV files ([`csv`]),
//! plain-text tables ([`table`]) and standard output ([`output`]).

pub mod csv;
pub mod output;
pub mod table;
