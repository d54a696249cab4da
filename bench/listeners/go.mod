module kicau/bench/listeners

go 1.22
