fn main() {
    eprintln!("resizer-api: not built yet");
    std::process::exit(1);
}
