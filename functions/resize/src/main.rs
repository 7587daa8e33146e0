fn main() {
    eprintln!("resizer-resize: not built yet");
    std::process::exit(1);
}
