fn main() {
    eprintln!("resizer: not built yet");
    std::process::exit(1);
}
