//! The commands, grouped by who uses them: `publish` for the people who sign a repository
//! (`packman repo …`), `consume` for the people who download from one (`packman download`),
//! `operate` for the people who host one (`packman serve`), `trust` for the repositories a user
//! trusts (`packman trust …`, `packman update`), `read` for reading them (`search`, `info`,
//! `download PROJECT`, `verify`). Each only parses arguments,
//! calls a library and turns its errors into messages.

pub mod consume;
pub mod install;
pub mod open;
pub mod operate;
pub mod proxy;
pub mod publish;
pub mod python;
pub mod read;
pub mod trust;
pub mod url_handler;
