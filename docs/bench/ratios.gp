# gnuplot script written by bench/report.lua; bench/run runs it.
set terminal pngcairo size 1400,782 font ",10" noenhanced
set output "docs/bench/ratios.png"
set title "memmapfs ÷ peer (or ÷ machine limit), medians of 5 runs, size small\ngreen: meets the goal, red: misses; black diamond: the goal"
set style fill solid 0.8
set logscale x 10
set xrange [0.00610943:65.802]
set xlabel "ratio (log scale)"
set ytics nomirror
set yrange [-0.7:26.7]
set grid xtics
set key off
unset colorbox
set palette defined (0 "#d9534f", 1 "#5cb85c")
set cbrange [0:1]
# the first comparison at the top
plot "docs/bench/ratios.dat" using ($3):(26-$1):(0.00610943):($3):(26-$1-0.35):(26-$1+0.35):($5):ytic(2) with boxxyerror lc palette, \
     "" using 4:(26-$1) with points pt 13 ps 2 lc rgb "black"
