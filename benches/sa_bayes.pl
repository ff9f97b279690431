#!/usr/bin/perl
# SpamAssassin's side of benches/accuracy.py, through its Perl API (loaded once, not a process per
# message): `learn DBDIR LIST` learns every `label<TAB>path` row into a Bayes database under DBDIR;
# `check DBDIR LIST` prints, per row, `label<TAB>score<TAB>bayes probability (or -)`. Local tests
# only (no DNS, no network), no auto-learn, required_score as installed (5).
use strict;
use warnings;
use Mail::SpamAssassin;

my ($mode, $db, $list) = @ARGV;
die "usage: sa_bayes.pl learn|check DBDIR LIST\n" unless $mode && $db && $list;
my $sa = Mail::SpamAssassin->new({
    local_tests_only => 1,
    dont_copy_prefs => 1,
    userprefs_filename => "$db/user_prefs",
    post_config_text => "use_bayes 1\nbayes_auto_learn 0\nbayes_path $db/bayes\nbayes_file_mode 0777\nuse_bayes_rules 1\n",
});
$sa->init(1);
open(my $fh, '<', $list) or die "$list: $!";
my @rows = map { chomp; [split /\t/] } <$fh>;
if ($mode eq 'learn') {
    for my $r (@rows) {
        my ($label, $path) = @$r;
        open(my $m, '<', $path) or next;
        my @lines = <$m>;
        my $mail = $sa->parse(\@lines);
        $sa->learn($mail, undef, $label eq 'spam', 0);
        $mail->finish();
    }
    $sa->finish_learner();
} else {
    $| = 1;
    for my $r (@rows) {
        my ($label, $path) = @$r;
        open(my $m, '<', $path) or next;
        my @lines = <$m>;
        my $mail = $sa->parse(\@lines);
        my $status = $sa->check($mail);
        my $bayes = $status->get_tag('BAYES');
        $bayes = '-' unless defined $bayes && $bayes ne '';
        printf "%s\t%.3f\t%s\n", $label, $status->get_score(), $bayes;
        $status->finish();
        $mail->finish();
    }
}
