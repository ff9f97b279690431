pub mod hsdb;
pub mod mime;
pub mod rules;
pub mod urls;
pub mod phish;
