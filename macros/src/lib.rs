//! Derive macros for batpak (being written).
use proc_macro::TokenStream;
/// Derives `batpak::EventPayload`.
#[proc_macro_derive(EventPayload, attributes(batpak))]
pub fn derive_event_payload(_input: TokenStream) -> TokenStream { TokenStream::new() }
