//! The display-filter compiler on arbitrary text, and evaluation of what compiles.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mirrorwatch::filter::Filter;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = Filter::compile(text) {
        let _ = e.render(text);
    }
});
